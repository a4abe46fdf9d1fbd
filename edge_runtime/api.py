"""Python API of the board runtime.

    from edge_runtime import load_model
    model = load_model("models/denoise_int8.tflite")   # or a short name: load_model("denoise")
    clean = model.restore(noisy)                         # HxWxC or HxW, uint8/uint16/float in [0,1]

For fixed-size camera frames, `FrameStream(model, height, width)` precomputes the tiling and
reuses every buffer: `stream.process(frame)`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import Backend, open_backend, read_model_bytes, tflite_contract
from .catalog import CardInfo, card_for, shipped_models_dir, verify_shipped
from .contract import ModelContract
from .ensemble import check_views, ensemble_tile, shuffled_restore
from .errors import ModelError, UsageError
from .tiling import RunTile, Tiler

#: Environment variable with extra model folders (os.pathsep-separated), searched first.
MODELS_ENV = "EDGE_RESTORE_MODELS"
_MODEL_SUFFIXES = (".tflite", ".onnx")


def models_dirs() -> list[Path]:
    """Folders searched for short model names: $EDGE_RESTORE_MODELS, then the shipped models.

    The shipped models are the installed package's edge_runtime/models/, or the checkout's models/.
    """
    dirs = [Path(d) for d in os.environ.get(MODELS_ENV, "").split(os.pathsep) if d]
    dirs.append(shipped_models_dir())
    return dirs


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A model path: an existing file as given, else a short name looked up in models_dirs().

    `denoise` resolves to the first of denoise_int8.tflite, denoise.tflite, denoise.onnx found.
    A file found by short name is checked against the SHA-256 recorded at build time, if any.
    """
    p = Path(name_or_path)
    text = str(name_or_path)
    if p.exists() or p.suffix.lower() in _MODEL_SUFFIXES or "/" in text or os.sep in text:
        return p
    candidates = [f"{text}_int8.tflite", f"{text}.tflite", f"{text}.onnx"]
    for folder in models_dirs():
        for name in candidates:
            if (folder / name).is_file():
                verify_shipped(folder / name)
                return folder / name
    where = ", ".join(str(d) for d in models_dirs())
    raise ModelError(f"model not found: {text!r} is not a file and no {candidates[0]} is in {where}")


@dataclass
class ModelInfo:
    path: Path
    contract: ModelContract | None
    error: str = ""
    card: CardInfo = CardInfo(None)

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def list_models() -> list[ModelInfo]:
    """Every *.tflite in models_dirs() with its contract (or the reason it has none)."""
    seen: set[Path] = set()
    found: list[ModelInfo] = []
    for folder in models_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.tflite")):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                p, data = read_model_bytes(path)
                found.append(ModelInfo(path, tflite_contract(p, data), card=card_for(path)))
            except ModelError as exc:
                found.append(ModelInfo(path, None, str(exc), card=card_for(path)))
    return found


@dataclass
class RunStats:
    """Counters for --benchmark: tiles run and seconds spent inside the model."""

    tiles: int = 0
    inference_seconds: float = 0.0

    @property
    def seconds_per_tile(self) -> float:
        return self.inference_seconds / self.tiles if self.tiles else 0.0


class RestorationModel:
    """A loaded model plus its contract; `restore()` runs any image size through it."""

    def __init__(self, backend: Backend, overlap: int | None = None, strength: float = 1.0,
                 views: int = 1, pixel_shuffle: bool = False) -> None:
        self.backend = backend
        self.strength = check_strength(strength)
        self.views = check_views(views)
        self.pixel_shuffle = bool(pixel_shuffle)
        self.contract: ModelContract = backend.contract
        self.tile_size = backend.tile_size
        self.overlap = self.contract.overlap if overlap is None else int(overlap)
        if not 0 <= self.overlap < self.tile_size / 2:
            if overlap is not None:  # the caller's choice, not the model's: a usage error (exit 1)
                raise UsageError(f"tile overlap (--tile-overlap) {self.overlap} must be in [0, {self.tile_size // 2}) "
                                 f"for this model's tile size {self.tile_size}")
            raise ModelError(f"tile overlap {self.overlap} must be in [0, {self.tile_size // 2}) for tile size {self.tile_size}")
        self.stats = RunStats()

    @property
    def path(self) -> Path:
        return self.backend.path

    def __repr__(self) -> str:
        return f"RestorationModel({self.backend.describe()})"

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        """One (1, T, T, C) float32 tile in [0, 1] through the model (timed into self.stats; each
        view counts as a tile), averaged over `views` flips/transposes of the tile, and scaled by
        `strength`: input + strength * (model output - input)."""
        if self.views == 1:
            out = self._timed(self.backend.run, tile)
        else:
            out = ensemble_tile(lambda t: self._timed(self.backend.run, t), tile, self.views)
        if self.strength != 1.0:
            out = tile + np.float32(self.strength) * (out - tile)
        return out

    def _timed(self, run: RunTile, tile: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = run(tile)
        self.stats.inference_seconds += time.perf_counter() - start
        self.stats.tiles += 1
        return out

    def _run_pixels(self, tile: np.ndarray) -> np.ndarray:
        return self._timed(self.backend.run_pixels, tile)

    @property
    def pixel_runner(self) -> RunTile | None:
        """run_tile for (1, T, T, C) uint8 tiles when the backend takes 8-bit pixels directly, else
        None: the `run_pixels` argument of Tiler.run. A strength other than 1 or several views need
        the float path."""
        plain = self.strength == 1.0 and self.views == 1
        return self._run_pixels if self.backend.takes_pixels and plain else None

    def tiler(self, height: int, width: int, channels: int) -> Tiler:
        return Tiler(height, width, self.tile_size, self.overlap, channels, self.backend.channels)

    def restore(self, image: np.ndarray, progress=None) -> np.ndarray:
        """Restore an image; returns the same dtype and shape.

        image: (H, W), (H, W, 1), (H, W, 3), or (H, W, 2) / (H, W, 4) with alpha (passed through); uint8, uint16 or
        float in [0, 1] (floats are clipped to [0, 1]). Gray goes through a colour model replicated
        to 3 channels and is averaged back. `progress(done, total)` is called after every tile.
        """
        arr = np.asarray(image)
        color, alpha, squeeze = _split(arr)
        out = np.empty(color.shape, color.dtype)
        self.restore_into(color, out, progress)
        return _join(out, alpha, squeeze)

    def restore_into(self, image: np.ndarray, out: np.ndarray, progress=None) -> None:
        """Restore an (H, W, C) colour/gray image into `out` (same shape; `out` may be `image`
        itself, restored in place), with this model's views and pixel shuffle."""
        if self.pixel_shuffle:
            shuffled_restore(image, out, self, progress)
        else:
            self.tiler(*image.shape).run(image, self.run_tile, out=out, progress=progress, run_pixels=self.pixel_runner)


def _split(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    if arr.dtype.byteorder not in ("=", "|") and arr.dtype.kind in "uf":
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian uint16 / float from a file
    if arr.dtype not in (np.uint8, np.uint16) and arr.dtype.kind != "f":
        raise TypeError(f"image dtype {arr.dtype} is not supported (uint8, uint16 or float in [0, 1])")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("image has NaN or infinite values")
    if arr.ndim == 2:
        return arr[..., None], None, True
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"image shape {arr.shape} is not HxW or HxWxC with C in 1..4")
    if arr.shape[2] in (2, 4):  # gray+alpha / RGBA: the last channel is alpha
        return arr[..., :-1], arr[..., -1:], False
    return arr, None, False


def _join(out: np.ndarray, alpha: np.ndarray | None, squeeze: bool) -> np.ndarray:
    if alpha is not None:
        return np.concatenate([out, alpha], axis=2)
    return out[..., 0] if squeeze else out


#: Largest --strength accepted: beyond 2 the output extrapolates past the model's own estimate by
#: more than the model's whole correction, which only amplifies artefacts.
MAX_STRENGTH = 2.0


def check_strength(strength: float) -> float:
    """A restoration strength in [0, MAX_STRENGTH] (1: the model as trained; 0: the input)."""
    value = float(strength)
    if not (np.isfinite(value) and 0.0 <= value <= MAX_STRENGTH):
        raise UsageError(f"strength must be a number between 0 and {MAX_STRENGTH:g}, got {strength}")
    return value


def load_model(
    path_or_name: str | os.PathLike,
    threads: int | None = None,
    device: str = "cpu",
    *,
    cpu_fallback: bool = False,
    overlap: int | None = None,
    strength: float = 1.0,
    views: int = 1,
    pixel_shuffle: bool = False,
) -> RestorationModel:
    """Load and validate a .tflite or .onnx model (or a shipped short name like "denoise").

    threads: interpreter threads (default os.cpu_count()); device: "cpu" or "edgetpu";
    cpu_fallback: run on the CPU with a warning when the Edge TPU is missing (else DeviceError);
    overlap: tile overlap in pixels (default: the model contract's).
    strength: how much of the model's correction is applied, input + strength * (output - input):
    1 (default) is the model as trained, below 1 keeps more of the input (texture, skin), above 1
    removes more (flat sky); at most MAX_STRENGTH.
    views: average the output over 1, 2, 4 or 8 flips/transposes of every tile (that many model
    passes); pixel_shuffle: also restore the four 2x2 sub-images and average (twice the passes;
    for spatially correlated camera noise, see edge_runtime.ensemble).
    Raises ModelError with a one-line message for any invalid model.
    """
    backend = open_backend(resolve_model(path_or_name), threads=threads, device=device, cpu_fallback=cpu_fallback)
    return RestorationModel(backend, overlap=overlap, strength=strength, views=views, pixel_shuffle=pixel_shuffle)


class FrameStream:
    """Restore a stream of same-sized frames with no per-frame allocation.

        stream = FrameStream(model, 480, 640)
        for frame in camera:                 # (480, 640, 3) uint8
            clean = stream.process(frame)    # reused buffer: copy it if you keep it

    The tiling (indices, blend windows) and all tile/band/output buffers are made once.
    """

    def __init__(self, model: RestorationModel, height: int, width: int, channels: int = 3, dtype=np.uint8) -> None:
        if channels not in (1, 3, 4):
            raise ValueError(f"channels must be 1, 3 or 4, got {channels}")
        self.model = model
        self.shape = (int(height), int(width), int(channels))
        self.dtype = np.dtype(dtype)
        color_channels = 3 if channels == 4 else channels
        self._tiler = model.tiler(self.shape[0], self.shape[1], color_channels)
        self._out = np.empty(self.shape, self.dtype)
        self._out_2d = self._out[..., 0]  # the same buffer, returned for (H, W) gray frames
        self._color_out = np.empty((self.shape[0], self.shape[1], 3), self.dtype) if channels == 4 else None
        self.frames = 0

    def process(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Restore one frame ((H, W, C), or (H, W) for 1 channel) of the stream's dtype.

        Returns `out` if given, else the stream's own output buffer, overwritten by the next call.
        """
        arr = np.asarray(frame)
        gray_2d = self.shape[2] == 1 and arr.shape == self.shape[:2]
        if arr.dtype != self.dtype or not (arr.shape == self.shape or gray_2d):
            raise ValueError(f"frame {arr.shape} {arr.dtype} does not match the stream {self.shape} {self.dtype}")
        arr = arr.reshape(self.shape)
        target = self._out if out is None else out
        view = target.reshape(self.shape)
        if self._color_out is not None:  # RGBA: restore RGB, pass alpha through
            self._run(arr[..., :3], self._color_out)
            view[..., :3] = self._color_out
            view[..., 3] = arr[..., 3]
        else:
            self._run(arr, view)
        self.frames += 1
        if out is None and gray_2d:
            return self._out_2d
        return target

    def _run(self, image: np.ndarray, out: np.ndarray) -> None:
        if self.model.pixel_shuffle:  # five tilings of different sizes: the model's own path
            self.model.restore_into(image, out)
        else:
            self._tiler.run(image, self.model.run_tile, out=out, run_pixels=self.model.pixel_runner)
