"""Training data: clean images from any folder, degraded on the fly; paired folders; dead leaves.

Batches are produced by a seeded generator keyed on (seed, step), so a resumed run sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_runtime.contract import PIXEL_MAX

from .degradations import DegradationConfig, degrade

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    """All image files under `folder` (recursive), sorted for determinism."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def is_held_out(path: Path, every: int = 20) -> bool:
    """Deterministic validation split: about 1/`every` of files, chosen by a hash of the name."""
    return zlib.crc32(path.name.encode()) % every == 0


def load_image(path: Path, channels: int = 3) -> np.ndarray:
    """Read an image as float32 HxWxC in [0, 1]; grayscale is repeated to 3 channels if asked.

    16-bit files keep their precision.
    """
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float32) / 65535.0
            arr = arr[..., None]
        else:
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / PIXEL_MAX
            if arr.ndim == 2:
                arr = arr[..., None]
    if arr.shape[2] != channels:
        arr = np.repeat(arr[..., :1], channels, axis=2) if channels == 3 else arr.mean(axis=2, keepdims=True)
    return arr


#: What reading a corrupt, truncated or hostile image file may raise (all mean "skip this file").
UNREADABLE_IMAGE_ERRORS = (
    OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError, zlib.error, struct.error,
    Image.DecompressionBombError,
)


def load_images(paths: list[Path], channels: int = 3) -> list[np.ndarray]:
    """Load many images as uint8 arrays (compact in memory); unreadable files are reported and skipped."""
    images = []
    for p in paths:
        try:
            images.append(np.round(load_image(p, channels) * PIXEL_MAX).astype(np.uint8))
        except UNREADABLE_IMAGE_ERRORS as exc:
            log.warning("skipping unreadable training image %s: %s", p, " ".join(str(exc).split())[:200])
    if len(images) < len(paths):
        log.warning("skipped %d of %d training images as unreadable", len(paths) - len(images), len(paths))
    return images


def dead_leaves(size: int, rng: np.random.Generator, channels: int = 3, n_shapes: int = 300, rmin: float = 4.0) -> np.ndarray:
    """Procedural 'dead leaves' image: occluding discs with power-law radii and random colours.

    Its statistics (edges at all scales, flat regions) resemble natural images enough to train or
    test a restorer with no photos at all.
    """
    img = np.zeros((size, size, channels), dtype=np.float32)
    img[:] = rng.random(channels)
    yy, xx = np.mgrid[0:size, 0:size]
    rmax = max(rmin + 1.0, size / 3)
    u = rng.random(n_shapes)
    radii = (rmin ** -2 + u * (rmax ** -2 - rmin ** -2)) ** -0.5  # p(r) ~ r^-3
    for r in np.sort(radii)[::-1]:  # big first, small leaves on top
        cy, cx = rng.uniform(-r, size + r, 2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[mask] = rng.random(channels)
    return img


@dataclass(frozen=True)
class PatchConfig:
    """How batches of training patches are drawn."""

    patch: int = 64
    batch: int = 16
    dead_leaves_prob: float = 0.0
    seed: int = 0


class PatchSampler:
    """Random augmented patches of clean images with their degraded versions, keyed on step.

    With no images at all, every patch is procedural dead leaves.
    """

    def __init__(self, images: list[np.ndarray], degradation: DegradationConfig, cfg: PatchConfig, channels: int = 3) -> None:
        usable = [im for im in images if min(im.shape[:2]) >= cfg.patch]
        if images and not usable:
            raise ValueError(f"no training image is at least {cfg.patch} px on its shorter side")
        self.images = usable
        self.degradation = degradation
        self.cfg = cfg
        self.channels = channels
        #: pnp-prior: the denoiser run inside the HQS loop that makes later-iteration inputs
        self.prior: Callable[[np.ndarray], np.ndarray] | None = None

    def clean_patch(self, rng: np.random.Generator) -> np.ndarray:
        p = self.cfg.patch
        if not self.images or rng.random() < self.cfg.dead_leaves_prob:
            return dead_leaves(p, rng, self.channels)
        im = self.images[int(rng.integers(len(self.images)))]
        y = int(rng.integers(im.shape[0] - p + 1))
        x = int(rng.integers(im.shape[1] - p + 1))
        patch = im[y : y + p, x : x + p].astype(np.float32) / PIXEL_MAX
        patch = np.rot90(patch, int(rng.integers(4)))
        return np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(degraded, clean) as float32 NCHW arrays for training step `step`."""
        rng = np.random.default_rng([self.cfg.seed, step])
        clean = np.stack([self.clean_patch(rng) for _ in range(self.cfg.batch)])
        if self.degradation.task == "pnp-prior":
            from .pnp_prior import pnp_batch

            noisy = pnp_batch(clean, self.degradation, rng, self.prior)
        else:
            noisy = np.stack([degrade(c, self.degradation, rng) for c in clean])
        return noisy.transpose(0, 3, 1, 2).copy(), clean.transpose(0, 3, 1, 2).copy()


class BatchPrefetcher:
    """`sampler.batch(key)` for a known sequence of keys, computed ahead in worker processes.

    Degradations run in numpy on the CPU; on a GPU they, not the model, bound the step rate. At
    most `depth` batches wait at any time (bounded memory), and they come back in key order, so a
    run with workers trains on exactly the batches a run without them would.
    """

    def __init__(self, sampler: PatchSampler, keys, workers: int, depth: int | None = None) -> None:
        import multiprocessing as mp
        from collections import deque

        self._keys = iter(keys)
        self._sampler = sampler
        # fork shares the decoded photos with the workers copy-on-write instead of pickling them
        self._pool = mp.get_context("fork").Pool(workers, initializer=_set_worker_sampler, initargs=(sampler,))
        self._pending: deque = deque()
        for _ in range(depth or 2 * workers):
            self._submit()

    def _submit(self) -> None:
        key = next(self._keys, None)
        if key is not None:
            self._pending.append(self._pool.apply_async(_worker_batch, (key,)))

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch in key order."""
        if not self._pending:
            raise StopIteration("no keys left")
        result = self._pending.popleft().get()
        self._submit()
        return result

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


_WORKER_SAMPLER: PatchSampler | None = None


def _set_worker_sampler(sampler: PatchSampler) -> None:
    import signal

    global _WORKER_SAMPLER  # one sampler per worker process, set once at its start
    _WORKER_SAMPLER = sampler
    # Ctrl-C reaches the whole process group: the training loop handles it, the workers just stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_batch(key: int) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER_SAMPLER is not None  # set by the pool initializer; never user input
    return _WORKER_SAMPLER.batch(key)


def crop_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop HxWxC so both sides are multiples of `multiple` (top-left anchored)."""
    h, w = img.shape[0] - img.shape[0] % multiple, img.shape[1] - img.shape[1] % multiple
    return img[:h, :w]


def validation_pairs(
    paths: list[Path], degradation: DegradationConfig, multiple: int, seed: int = 1234, max_side: int = 512, channels: int = 3
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Fixed (name, degraded, clean) validation pairs: same noise every call for the same seed."""
    pairs = []
    for i, p in enumerate(paths):
        try:
            clean = crop_to_multiple(load_image(p, channels)[:max_side, :max_side], multiple)
        except UNREADABLE_IMAGE_ERRORS as exc:
            log.warning("skipping unreadable validation image %s: %s", p, " ".join(str(exc).split())[:200])
            continue
        if min(clean.shape[:2]) == 0:
            log.warning("skipping validation image %s: smaller than %d px", p, multiple)
            continue
        rng = np.random.default_rng([seed, i])
        pairs.append((p.name, degrade(clean, degradation, rng), clean))
    return pairs


def paired_files(degraded_dir: str | Path, clean_dir: str | Path) -> list[tuple[Path, Path]]:
    """Match degraded/clean files by stem (GoPro blur/sharp, SIDD noisy/gt layouts)."""
    clean = {p.stem: p for p in list_images(clean_dir)}
    pairs = [(d, clean[d.stem]) for d in list_images(degraded_dir) if d.stem in clean]
    if not pairs:
        raise ValueError(f"no files in {degraded_dir} share a name with a file in {clean_dir}")
    return pairs
