"""Self-ensembling: average a model's output over several views of the same pixels.

Two kinds of view, both undone exactly after the model:

* Geometric (`views` = 2, 4 or 8): flips and transposes of each square tile, the classic x8
  self-ensemble of restoration networks (Lim et al., EDSR, 2017). It helps on any noise: the
  errors of a model on a flipped tile are partly independent of those on the tile itself.
* Pixel shuffle (`pixel_shuffle`): the image is also split into its four 2x2-subsampled
  sub-images, each restored on its own, re-interleaved, and averaged with the full-resolution
  result (pixel-shuffle down-sampling; Zhou et al., "When AWGN-based Denoiser Meets Real Noises",
  AAAI 2020). Camera noise is spatially correlated (demosaicing, in-camera noise reduction); on
  a sub-image it is closer to the white noise the models learned. On white noise it hurts: the
  sub-images lose the fine detail the model needs (models/denoise_real.md has the measurements).

Cost: `views` model passes per tile; the pixel shuffle doubles it (the four sub-images hold as
many pixels as the image).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .errors import UsageError
from .tiling import RunTile, Tiler, max_value, tile_count

#: Accepted view counts: the first N of identity, left-right flip, up-down flip, both flips, and
#: the same four transposed.
VIEW_COUNTS = (1, 2, 4, 8)


def check_views(views: int) -> int:
    """A geometric view count from VIEW_COUNTS (UsageError otherwise)."""
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or int(views) not in VIEW_COUNTS:
        raise UsageError(f"ensemble views must be one of {', '.join(map(str, VIEW_COUNTS))}, got {views!r}")
    return int(views)


def view_of(tile: np.ndarray, k: int) -> np.ndarray:
    """View k (0..7) of a (1, T, T, C) tile: bit 0 flips left-right, bit 1 up-down, bit 2 transposes."""
    out = tile
    if k & 1:
        out = out[:, :, ::-1]
    if k & 2:
        out = out[:, ::-1]
    if k & 4:
        out = out.transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out)


def undo_view(tile: np.ndarray, k: int) -> np.ndarray:
    """The inverse of `view_of(., k)` (a view, not a copy)."""
    out = tile
    if k & 4:
        out = out.transpose(0, 2, 1, 3)
    if k & 2:
        out = out[:, ::-1]
    if k & 1:
        out = out[:, :, ::-1]
    return out


def ensemble_tile(run: RunTile, tile: np.ndarray, views: int) -> np.ndarray:
    """Mean of run() over the first `views` views of a square (1, T, T, C) float32 tile."""
    acc = np.array(run(tile), dtype=np.float32, copy=True)
    for k in range(1, views):
        acc += undo_view(run(view_of(tile, k)), k)
    acc *= np.float32(1.0 / views)
    return acc


def sub_images(height: int, width: int) -> list[tuple[slice, slice]]:
    """The four 2x2-subsampled sub-images of an image (the ones a 1-pixel axis lacks are left out)."""
    return [(slice(i, None, 2), slice(j, None, 2)) for i in range(min(2, height)) for j in range(min(2, width))]


class ShuffleModel(Protocol):
    """What `shuffled_restore` needs of a model (edge_runtime.api.RestorationModel)."""

    tile_size: int
    overlap: int
    pixel_runner: RunTile | None

    def tiler(self, height: int, width: int, channels: int) -> Tiler: ...

    def run_tile(self, tile: np.ndarray) -> np.ndarray: ...


def shuffled_restore(image: np.ndarray, out: np.ndarray, model: ShuffleModel,
                     progress: Callable[[int, int], None] | None = None) -> None:
    """Restore `image` (H, W, C) into `out` (which may be `image`) as the mean of the full-resolution
    result and the re-interleaved results of its four 2x2 sub-images.

    The sub-images are restored first (strided views, into one image-sized buffer of the image's
    dtype), so the full-resolution pass may then overwrite the image in place. That pass hands its
    rows over unrounded and each is averaged as it is finished, so an 8-bit result is rounded once
    more than a plain one, not twice. `progress(done, total)` counts the tiles of all five passes.
    """
    h, w, channels = image.shape
    parts = sub_images(h, w)
    shapes = [(len(range(h)[rows]), len(range(w)[cols])) for rows, cols in parts] + [(h, w)]
    total = sum(tile_count(a, b, model.tile_size, model.overlap) for a, b in shapes)
    offset = 0

    def shifted(done: int, _: int) -> None:
        if progress is not None:
            progress(offset + done, total)

    shuffled = np.empty_like(image)
    for (rows, cols), (a, b) in zip(parts, shapes):
        tiler = model.tiler(a, b, channels)
        tiler.run(image[rows, cols], model.run_tile, out=shuffled[rows, cols], progress=shifted,
                  run_pixels=model.pixel_runner)
        offset += tiler.tiles
        del tiler
    tiler = model.tiler(h, w, channels)
    tiler.check_target(image, out)  # combine() writes into out while the pass still reads image
    top = np.float32(max_value(image.dtype) / 2)

    def combine(row: int, col: int, rows: np.ndarray) -> None:
        region = (slice(row, row + rows.shape[0]), slice(col, col + rows.shape[1]))
        mean = rows * top + shuffled[region] * np.float32(0.5)
        out[region] = np.rint(mean) if out.dtype.kind != "f" else mean

    tiler.run(image, model.run_tile, sink=combine, sink_dtype=np.dtype(np.float32), progress=shifted,
              run_pixels=model.pixel_runner)
