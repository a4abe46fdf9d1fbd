"""Reading and writing images for restoration, keeping what a photographer expects kept.

Rules (also in `edge-restore --help`):

* EXIF orientation is applied to the pixels, and the orientation tag is removed from the output
  (same result as PIL.ImageOps.exif_transpose). The rest of EXIF and the ICC profile are written
  back where the output format can hold them (JPEG, PNG, TIFF, WebP).
* 16-bit PNG and TIFF stay 16-bit: they are processed as float and written back at 16 bits (RGB(A)
  and gray+alpha PNGs, RGB(A) TIFFs through the numpy codecs in png16/tiff16, as Pillow would drop
  them to 8 bits). A 16-bit image written as JPEG/WebP/BMP is reduced to 8 bits with a warning.
* Grayscale stays grayscale: it goes through a colour model with the gray value replicated to
  3 channels, and the 3 output channels are averaged back to 1 (see tiling.Tiler).
* Alpha is passed through untouched (only the colour channels are restored). JPEG cannot hold
  alpha: it is dropped with a warning.
* Palette (P) images become RGB (RGBA if they have transparency); CMYK becomes RGB (its CMYK ICC
  profile is dropped, with a warning); YCbCr/LAB/HSV become RGB; 1-bit becomes 8-bit gray.
* Multi-frame files (GIF, APNG, multi-page TIFF): only the first frame is restored, with a warning.
* Decompression bombs: the pixel count is checked from the header before any pixel is decoded
  (default cap 50 megapixels).
* Writes are atomic: a temporary file in the output folder, then os.replace(); the temporary file
  is removed on any failure.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import png16, tiff16
from .errors import InputImageError, MissingInputError, OutputWriteError, UsageError

log = logging.getLogger("edge_runtime")

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_QUALITY = 95
ORIENTATION_TAG = 0x0112
#: Output formats by extension.
FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".bmp": "BMP",
}
#: Extensions picked up when an input is a directory.
INPUT_EXTENSIONS = frozenset(FORMATS) | {".gif", ".apng"}
_ICC_FORMATS = {"PNG", "JPEG", "TIFF", "WEBP"}
_EXIF_FORMATS = {"PNG", "JPEG", "TIFF", "WEBP"}
_DPI_FORMATS = {"PNG", "JPEG", "TIFF"}
# TIFF IFD0 tags that describe the file layout, not the photo: never copied into EXIF.
_TIFF_LAYOUT_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 320, 322, 323,
     324, 325, 338, 339, 340, 341, 347, 530, 531, 532, 700, 33723, 34377, 34675, ORIENTATION_TAG}
)


@dataclass
class Picture:
    """A decoded image ready for restoration.

    color: (H, W, 1 | 3) uint8 or uint16, orientation already applied.
    alpha: (H, W) of the same dtype, or None; never restored, passed through.
    """

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: Image.Exif | None = None
    dpi: tuple[float, float] | None = None
    source_format: str = ""
    frames: int = 1

    @property
    def bits(self) -> int:
        return 16 if self.color.dtype == np.uint16 else 8

    @property
    def height(self) -> int:
        return int(self.color.shape[0])

    @property
    def width(self) -> int:
        return int(self.color.shape[1])

    @property
    def is_gray(self) -> bool:
        return self.color.shape[2] == 1


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip (H, W, ...) pixels for an EXIF orientation (1..8), as ImageOps.exif_transpose does."""
    if orientation == 2:
        out = pixels[:, ::-1]
    elif orientation == 3:
        out = pixels[::-1, ::-1]
    elif orientation == 4:
        out = pixels[::-1]
    elif orientation == 5:
        out = pixels.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(pixels, -1)
    elif orientation == 7:
        out = pixels.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(pixels, 1)
    else:
        return pixels
    return np.ascontiguousarray(out)


@contextmanager
def _pixel_limit_disabled():
    """Pillow's own bomb check is global and fixed; ours (per call, --max-pixels) replaces it."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if max_pixels and w * h > max_pixels:
        raise InputImageError(
            f"{path}: {w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} pixels "
            "(possible decompression bomb; raise it with --max-pixels)"
        )


def _clean_exif(exif: Image.Exif, source_format: str) -> Image.Exif | None:
    if source_format == "TIFF":  # Pillow's TIFF EXIF is the whole IFD0: keep only the photo tags
        clean = Image.Exif()
        for tag, value in exif.items():
            if tag not in _TIFF_LAYOUT_TAGS:
                clean[tag] = value
        for ifd in (0x8769, 0x8825):
            sub = exif.get_ifd(ifd)
            if sub:
                clean.get_ifd(ifd).update(sub)
        exif = clean
    exif.pop(ORIENTATION_TAG, None)
    has_sub = any(exif.get_ifd(i) for i in (0x8769, 0x8825))
    return exif if (len(exif) or has_sub) else None


def _decode_error(path: Path, exc: BaseException) -> InputImageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputImageError(f"{path}: cannot decode image ({text})")


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode an image file into a Picture (see the module docstring for the rules).

    Raises MissingInputError if the file does not exist, InputImageError if it is not an image,
    is truncated or corrupt, or has more than `max_pixels` pixels (checked before decoding).
    """
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"input not found: {p}")
    if not p.is_file():
        raise MissingInputError(f"input is not a file: {p}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise MissingInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    with _pixel_limit_disabled():
        try:
            im = Image.open(p)  # lazy: reads the header only
        except UnidentifiedImageError:
            raise InputImageError(f"{p}: not a readable image (unknown or corrupt format)") from None
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
            raise _decode_error(p, exc) from None
        with im:
            check_pixels(p, im.size, max_pixels)
            return _decode(p, im, head)


def _decode(p: Path, im: Image.Image, head: bytes) -> Picture:
    fmt = im.format or ""
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        log.warning("%s has %d frames; only the first frame is restored", p, frames)
        im.seek(0)
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not lose the photo
        log.warning("%s: EXIF is unreadable and is not copied", p)
        exif = Image.Exif()
    orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
    icc = im.info.get("icc_profile") or None
    dpi = im.info.get("dpi")
    alpha_from_color = False
    try:
        mode = im.mode
        if fmt == "PNG" and png16.needs_png16(head) and png16.png_header(head)[4]:
            log.warning("%s: interlaced 16-bit colour PNGs are read at 8 bits (Pillow)", p)
        if fmt == "PNG" and png16.needs_png16(head) and not png16.png_header(head)[4]:
            pixels, info = png16.decode(p.read_bytes())
            icc = info.get("icc_profile", icc)
            alpha_from_color = pixels.shape[2] in (2, 4)
        elif fmt == "TIFF" and tiff16.is_rgb16(im.tag_v2) and _tiff16_ok(p, im):
            pixels = tiff16.decode(p.read_bytes(), im.tag_v2, im.tag_v2._endian)
            alpha_from_color = pixels.shape[2] == 4
        elif mode.startswith("I;16") or mode == "I":
            arr = np.asarray(im)
            if mode == "I" and (arr.min(initial=0) < 0 or arr.max(initial=0) > 65535):
                raise InputImageError(f"{p}: 32-bit integer images are not supported")
            pixels = arr.astype(np.uint16)[..., None]
        elif mode == "F":
            raise InputImageError(f"{p}: 32-bit float images are not supported")
        else:
            if mode == "CMYK" and icc:
                log.warning("%s: CMYK converted to RGB; its CMYK ICC profile is not copied", p)
                icc = None
            im = im.convert(_target_mode(im))
            pixels = np.asarray(im)
            pixels = pixels[..., None] if pixels.ndim == 2 else pixels
            alpha_from_color = pixels.shape[2] in (2, 4)
    except InputImageError:
        raise
    except (png16.PngError, tiff16.TiffError) as exc:
        raise _decode_error(p, exc) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError) as exc:
        raise _decode_error(p, exc) from None
    if alpha_from_color:
        color, alpha = pixels[..., :-1], pixels[..., -1]
    else:
        color, alpha = pixels, None
    color = apply_orientation(np.ascontiguousarray(color), orientation)
    if alpha is not None:
        alpha = apply_orientation(np.ascontiguousarray(alpha), orientation)
    if orientation in (5, 6, 7, 8) and dpi:
        dpi = (dpi[1], dpi[0])
    return Picture(
        color=color, alpha=alpha, icc_profile=icc, exif=_clean_exif(exif, fmt),
        dpi=tuple(float(d) for d in dpi) if dpi else None, source_format=fmt, frames=frames,
    )


def _tiff16_ok(p: Path, im: Image.Image) -> bool:
    """Whether tiff16 can decode this 16-bit RGB page; if not, say that Pillow reads it at 8 bits."""
    compression = im.tag_v2.get(tiff16.COMPRESSION, 1)
    supported = (
        tiff16.TILE_WIDTH not in im.tag_v2
        and im.tag_v2.get(tiff16.PLANAR, 1) == 1
        and compression in (1, 8, 32946)
        and im.tag_v2.get(tiff16.PREDICTOR, 1) in (1, 2)
    )
    if not supported:
        log.warning("%s: this 16-bit RGB TIFF layout (compression %s) is read at 8 bits by Pillow", p, compression)
    return supported


def _target_mode(im: Image.Image) -> str:
    mode = im.mode
    if mode in ("L", "RGB", "RGBA", "LA"):
        return mode
    if mode in ("P", "PA"):
        return "RGBA" if mode == "PA" or "transparency" in im.info else "RGB"
    if mode == "1":
        return "L"
    if mode == "La":
        return "LA"
    if mode == "RGBa":
        return "RGBA"
    return "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX, ...


# --------------------------------------------------------------------------------------- writing

_UMASK = os.umask(0)
os.umask(_UMASK)


def output_format(path: str | os.PathLike) -> str:
    """Pillow format name for an output path's extension, or UsageError."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise UsageError(f"unsupported output extension {ext or '(none)'!r} for {path} (use {', '.join(sorted(FORMATS))})")
    return FORMATS[ext]


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call write(file) on a temporary file beside `path`, then os.replace() it into place.

    The temporary file is removed on any failure; OSErrors become OutputWriteError.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputWriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputWriteError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.rint(pixels.astype(np.float32) / 257.0).astype(np.uint8)


def encode_image(picture: Picture, fmt: str, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode a Picture in a Pillow format name (PNG, JPEG, TIFF, WEBP, BMP)."""
    color, alpha = picture.color, picture.alpha
    exif_bytes = picture.exif.tobytes() if picture.exif is not None and fmt in _EXIF_FORMATS else None
    icc = picture.icc_profile if fmt in _ICC_FORMATS else None
    if fmt == "JPEG" and alpha is not None:
        if np.any(alpha != np.iinfo(alpha.dtype).max):
            log.warning("JPEG cannot store transparency: the alpha channel is dropped")
        alpha = None
    sixteen = color.dtype == np.uint16
    if sixteen and fmt == "PNG":
        planes = color if alpha is None else np.concatenate([color, alpha[..., None]], axis=2)
        return png16.encode(planes, icc_profile=icc, exif=exif_bytes)
    if sixteen and fmt == "TIFF" and color.shape[2] == 3:
        planes = color if alpha is None else np.concatenate([color, alpha[..., None]], axis=2)
        return tiff16.encode(planes, icc_profile=icc, exif=picture.exif)
    if sixteen and fmt == "TIFF" and alpha is None:
        im = Image.fromarray(np.ascontiguousarray(color[..., 0]), mode=None)  # I;16
    else:
        if sixteen:
            log.warning("%s output is 8-bit: the 16-bit image is reduced to 8 bits", fmt)
            color = to_8bit(color)
            alpha = None if alpha is None else to_8bit(alpha)
        planes = color if alpha is None else np.concatenate([color, alpha[..., None]], axis=2)
        if planes.shape[2] == 1:
            planes = planes[..., 0]
        im = Image.fromarray(np.ascontiguousarray(planes))
    kwargs: dict = {}
    if icc:
        kwargs["icc_profile"] = icc
    if exif_bytes:
        kwargs["exif"] = exif_bytes
    if picture.dpi and fmt in _DPI_FORMATS:
        kwargs["dpi"] = picture.dpi
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_image(path: str | os.PathLike, picture: Picture, quality: int = DEFAULT_QUALITY) -> None:
    """Write a Picture atomically; the format comes from the extension (UsageError if unknown)."""
    fmt = output_format(path)
    try:
        data = encode_image(picture, fmt, quality)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise OutputWriteError(f"cannot encode {path} as {fmt}: {exc}") from None
    atomic_write(path, lambda fh: fh.write(data))


def side_by_side(before: Picture, after: Picture) -> Picture:
    """A Picture with `before` on the left and `after` on the right (for --compare)."""
    color = np.concatenate([before.color, after.color], axis=1)
    alpha = None
    if before.alpha is not None and after.alpha is not None:
        alpha = np.concatenate([before.alpha, after.alpha], axis=1)
    return replace(after, color=color, alpha=alpha)
