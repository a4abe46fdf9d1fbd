"""Reading and writing images for restoration, keeping what a photographer expects kept.

Rules (also in `edge-restore --help`):

* EXIF orientation is applied to the pixels, and the orientation tag is removed from the output
  (same result as PIL.ImageOps.exif_transpose). The rest of EXIF and the ICC profile are written
  back where the output format can hold them (JPEG, PNG, TIFF, WebP).
* 16-bit PNG and TIFF stay 16-bit: they are processed as float and written back at 16 bits (RGB(A)
  and gray+alpha PNGs, RGB(A) and gray+alpha TIFFs through the numpy codecs in png16/tiff16, as
  Pillow would drop them to 8 bits, or not open gray+alpha TIFFs at all). A 16-bit image written
  as JPEG/WebP/BMP is reduced to 8 bits with a warning.
* Grayscale stays grayscale: it goes through a colour model with the gray value replicated to
  3 channels, and the 3 output channels are averaged back to 1 (see tiling.Tiler).
* Alpha is passed through untouched (only the colour channels are restored). JPEG cannot hold
  alpha: it is dropped with a warning.
* Palette (P) images become RGB (RGBA if they have transparency); CMYK becomes RGB (its CMYK ICC
  profile is dropped, with a warning); YCbCr/LAB/HSV become RGB; 1-bit becomes 8-bit gray.
* Multi-frame files (GIF, APNG, multi-page TIFF): only the first frame is restored, with a warning.
* Decompression bombs: the pixel count is checked from the header before any pixel is decoded
  (default cap 50 megapixels, about 150 MB decoded at 8 bits; raise it with --max-pixels), and
  the zlib streams the runtime inflates itself (16-bit PNG/TIFF, ICC) are inflated with a bound.
* Hostile files: only regular files are opened (FIFOs, devices and symlink loops are refused
  without blocking); only the formats in ALLOWED_FORMATS are ever identified, so no plugin that
  runs an external program (EPS -> Ghostscript) can be reached; a file whose content is another
  allowed format than its extension says is read by content, with a warning; 0-pixel images are
  refused; a malformed EXIF block or orientation tag is skipped with a warning. Every failure is
  a MissingInputError (66) or InputImageError (65) with one line.
* Writes are atomic: a temporary file in the output folder, then os.replace(); the temporary file
  is removed on any failure.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import struct
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
from .labels import stamp_label

log = logging.getLogger("edge_runtime")

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_QUALITY = 95
#: zlib level of PNG outputs. Measured on a 3.8 MP restored photo (docs/performance.md): level 1
#: encodes about 5x faster than Pillow's default 6 for a file about 10% larger; on the board the
#: encoder would otherwise cost two thirds of the model's time. `--png-level` picks another.
DEFAULT_PNG_LEVEL = 1
ORIENTATION_TAG = 0x0112
#: Output formats by extension.
FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG",
    ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".bmp": "BMP",
}
#: Extensions picked up when an input is a directory.
INPUT_EXTENSIONS = frozenset(FORMATS) | {".gif", ".apng"}
#: The only Pillow formats ever identified on input (multi-picture camera JPEGs come back as MPO).
#: Everything else (EPS, PDF, PSD, ICO, ...) is refused before a plugin touches it.
ALLOWED_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF")
#: What each input extension should contain (a mismatch is read by content, with a warning).
_EXTENSION_FORMATS = {
    ".png": {"PNG"}, ".apng": {"PNG"}, ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".jpe": {"JPEG", "MPO"},
    ".jfif": {"JPEG", "MPO"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"}, ".webp": {"WEBP"}, ".bmp": {"BMP"}, ".gif": {"GIF"},
}
# Formats that are recognised only to name them in the refusal message.
_REFUSED_MAGIC = (
    (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"), (b"8BPS", "Photoshop PSD"),
    (b"<?xml", "XML/SVG"), (b"<svg", "SVG"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"),
    (b"gimp xcf", "GIMP XCF"), (b"\x76\x2f\x31\x01", "OpenEXR"),
)
#: Bound on any zlib stream the runtime inflates itself outside the pixel data (ICC profiles).
MAX_METADATA_BYTES = 16 * 1024 * 1024
#: Fuzzing aid: when True, an exception type read_image does not expect is re-raised as is
#: instead of becoming an InputImageError, so a fuzzer can see it (scripts/fuzz.py sets it).
STRICT_ERRORS = False
# What a decoder may raise on a corrupt file; all of them mean "bad input image" (65).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError, struct.error)
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
def _pixel_limit_disabled(path: Path | None = None):
    """Pillow's own bomb check is global and fixed; ours (per call, --max-pixels) replaces it.

    Pillow's own warnings about a file (corrupt EXIF, truncated metadata) are collected and
    logged as one-line warnings naming the file, at most three of them.
    """
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                yield
            finally:
                messages = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
                for text in messages[:3]:
                    log.warning("%s: %s", path, text[:200])
    finally:
        Image.MAX_IMAGE_PIXELS = old


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise InputImageError(f"{path}: image has no pixels ({w}x{h})")
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


def _safe_exif(p: Path, exif: Image.Exif, source_format: str) -> Image.Exif | None:
    """The EXIF to copy to the output, or None (with a warning) if it cannot be re-encoded."""
    try:
        clean = _clean_exif(exif, source_format)
        if clean is not None:
            clean.tobytes()  # proves it can be written back
        return clean
    except Exception as exc:  # malformed EXIF has no fixed exception type; it must not lose the photo
        log.warning("%s: EXIF is malformed (%s) and is not copied", p, type(exc).__name__)
        return None


def _orientation(p: Path, exif: Image.Exif) -> int:
    """EXIF orientation 1..8; anything else is ignored (with a warning) and the pixels are used as stored."""
    raw = exif.get(ORIENTATION_TAG, 1)
    value = raw[0] if isinstance(raw, (tuple, list)) and len(raw) == 1 else raw
    if isinstance(value, int) and 1 <= value <= 8:
        return value
    if value not in (0, None):  # 0 is a common "unknown"
        log.warning("%s: EXIF orientation %.40r is invalid; the image is used as stored", p, raw)
    return 1


def _decode_error(path: Path, exc: BaseException) -> InputImageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputImageError(f"{path}: cannot decode image ({text[:200]})")


_PIL_DIR = os.path.dirname(Image.__file__)


def _raised_in_pillow(exc: BaseException) -> bool:
    """Whether the innermost frame of exc's traceback is Pillow's own code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _PIL_DIR


def _unexpected(path: Path, exc: Exception) -> InputImageError:
    """An exception type the decoders do not document.

    Raised inside Pillow (its plugins raise TypeError, KeyError, ... on some corrupt files), it
    means a bad image. Raised in edge-restore's own code it is a bug: STRICT_ERRORS re-raises it
    (the fuzzer sets it); otherwise it still becomes a one-line InputImageError.
    """
    text = " ".join(str(exc).split())[:120]
    if _raised_in_pillow(exc):
        return InputImageError(f"{path}: cannot decode image ({type(exc).__name__}: {text})")
    if STRICT_ERRORS:
        raise exc
    return InputImageError(f"{path}: cannot decode image (unexpected {type(exc).__name__}: {text})")


def _open_regular(p: Path) -> BinaryIO:
    """Open a regular file for reading, never blocking on a FIFO or touching a device."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise MissingInputError(f"input not found: {p}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MissingInputError(f"input is a symbolic link loop: {p}") from None
        raise MissingInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (FIFO, socket or device)"
        raise MissingInputError(f"input is {kind}: {p}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise MissingInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat() above
        os.close(fd)
        raise MissingInputError(f"input is not a regular file: {p}")
    return os.fdopen(fd, "rb")


def _refused_format(head: bytes) -> str | None:
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    stripped = head.lstrip()
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic) or stripped.startswith(magic):
            return name
    return None


def _declared_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or BMP header, to name the problem when Pillow refuses it."""
    if head.startswith(png16.SIGNATURE) and len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    return None


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode an image file into a Picture (see the module docstring for the rules).

    Raises MissingInputError if the file does not exist or is not a regular file, InputImageError
    if it is empty, not an image of an allowed format, truncated or corrupt, has no pixels, or has
    more than `max_pixels` pixels (checked from the header, before decoding).
    """
    p = Path(path)
    with _open_regular(p) as fh:
        try:
            head = fh.read(64)
            fh.seek(0)
        except OSError as exc:
            raise MissingInputError(f"cannot read {p}: {exc.strerror or exc}") from None
        if not head:
            raise InputImageError(f"{p}: empty file (0 bytes)")
        refused = _refused_format(head)
        if refused:
            raise InputImageError(
                f"{p}: {refused} files are not accepted (allowed: {', '.join(ALLOWED_FORMATS)})"
            )
        with _pixel_limit_disabled(p):
            try:
                im = Image.open(fh, formats=ALLOWED_FORMATS)  # lazy: reads the header only
            except UnidentifiedImageError:
                if head[:4] in (b"II*\0", b"MM\0*"):
                    picture = _read_tiff_pillow_refuses(p, fh, max_pixels)
                    if picture is not None:
                        return picture
                size = _declared_size(head)
                if size is not None and min(size) == 0:
                    raise InputImageError(f"{p}: image has no pixels ({size[0]}x{size[1]})") from None
                raise InputImageError(
                    f"{p}: not a readable image (unknown or corrupt format; allowed: {', '.join(ALLOWED_FORMATS)})"
                ) from None
            except _DECODE_ERRORS as exc:
                raise _decode_error(p, exc) from None
            except MemoryError:
                raise
            except Exception as exc:
                raise _unexpected(p, exc) from None
            with im:
                check_pixels(p, im.size, max_pixels)
                expected = _EXTENSION_FORMATS.get(p.suffix.lower())
                if expected and im.format not in expected:
                    log.warning("%s: the file is %s, not what its %s extension says; read as %s",
                                p, im.format, p.suffix, im.format)
                try:
                    return _decode(p, im, head, fh)
                except (InputImageError, MemoryError):
                    raise
                except (png16.PngError, tiff16.TiffError, *_DECODE_ERRORS) as exc:
                    raise _decode_error(p, exc) from None
                except Exception as exc:
                    raise _unexpected(p, exc) from None


def _read_tiff_pillow_refuses(p: Path, fh: BinaryIO, max_pixels: int | None) -> Picture | None:
    """A 16-bit gray + alpha TIFF (Pillow cannot open one) through tiff16, alpha passed through;
    None for any other TIFF Pillow refused (the caller reports it as unreadable)."""
    try:
        tags = tiff16.first_page_tags(fh)
    except tiff16.TiffError:
        return None
    if not tiff16.is_gray_alpha16(tags):
        return None
    try:
        check_pixels(p, (int(tags[tiff16.WIDTH]), int(tags[tiff16.LENGTH])), max_pixels)
        if not (tiff16.TILE_WIDTH not in tags and tags.get(tiff16.PLANAR, 1) == 1
                and tags.get(tiff16.COMPRESSION, 1) in (1, 8, 32946) and tags.get(tiff16.PREDICTOR, 1) in (1, 2)):
            raise InputImageError(f"{p}: this 16-bit gray + alpha TIFF layout (tiles, planes, or compression "
                                  f"{tags.get(tiff16.COMPRESSION, 1)}) is not supported")
        pixels = tiff16.gray_alpha(tiff16.decode(_whole_file(fh), tags, tags._endian), tags)
    except (KeyError, TypeError, tiff16.TiffError) as exc:
        raise _decode_error(p, exc) from None
    orientation = tags.get(0x0112, 1)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    icc = tags.get(tiff16.ICC)
    return Picture(color=apply_orientation(np.ascontiguousarray(pixels[..., :1]), orientation),
                   alpha=apply_orientation(np.ascontiguousarray(pixels[..., 1]), orientation),
                   icc_profile=icc if isinstance(icc, bytes) and icc else None, exif=None,
                   dpi=None, source_format="TIFF", frames=1)


#: Bytes put before a JPEG's final EOI marker to see whether the decoder still needs data.
_JPEG_PROBE_PAD = b"\x55" * 512


def _jpeg_digest(data: bytes, full: bool) -> bytes:
    """A digest of the decoded JPEG: at 1/8 scale (DC only, but every coefficient is still
    entropy-decoded), or at full scale (a progressive file's AC scans), hashed a band at a time."""
    import hashlib

    with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
        if not full:
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
        digest = hashlib.sha256()
        w, h = im.size
        step = max(1, _BAND_BYTES // (4 * w))
        for y in range(0, h, step):
            digest.update(im.crop((0, y, w, min(h, y + step))).tobytes())
        return digest.digest()


def _progressive_scans_missing(data: bytes) -> str | None:
    """For a progressive JPEG, what its scans leave out (coefficients never brought to full
    precision); None when complete or not progressive. Only marker segments are parsed.

    The 1/8-scale probe sees DC only: a progressive file cut in its AC scans needs this.
    """
    pos, components, progressive = 2, [], False
    final: dict[int, set[int]] = {}
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None  # not a marker where one must be: leave it to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        body = data[pos + 4 : pos + 2 + length]
        if marker in (0xC2, 0xC6, 0xCA, 0xCE) and len(body) >= 6:
            progressive = True
            components = [body[6 + 3 * i] for i in range(body[5]) if 6 + 3 * i < len(body)]
        pos += 2 + length
        if marker == 0xDA:  # SOS: its header, then entropy-coded data up to the next real marker
            if len(body) >= 1 and len(body) >= 1 + 2 * body[0] + 3:
                ns = body[0]
                ss, se, al = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns] & 0x0F
                if al == 0:
                    for i in range(ns):
                        final.setdefault(body[1 + 2 * i], set()).update(range(ss, min(se, 63) + 1))
            while pos + 1 < end and not (data[pos] == 0xFF and data[pos + 1] not in (0x00, 0xFF)
                                          and not 0xD0 <= data[pos + 1] <= 0xD7):
                pos += 1
    if not progressive:
        return None
    for comp in components:
        done = final.get(comp, set())
        if len(done) < 64:
            return f"component {comp} has {64 - len(done)} of 64 coefficients missing or not refined"
    return None


def _is_progressive(data: bytes) -> bool:
    return any(data.find(marker, 2, 1 << 20) >= 0 for marker in (b"\xff\xc2", b"\xff\xc6", b"\xff\xca", b"\xff\xce"))


def _check_jpeg_complete(p: Path, fh: BinaryIO) -> None:
    """InputImageError if a JPEG that ends in an EOI marker lacks image data before it.

    libjpeg treats a marker met inside the entropy-coded data as "premature end of data", fills
    the rest of the image with grey and only warns, which Pillow does not surface: a truncated
    file with EOI appended (or a 681-byte file claiming 7000x7000) decoded "fine". The file is
    decoded a second time at 1/8 scale with filler bytes before its EOI: a complete scan never
    reads them, a truncated one decodes them and comes out different.
    """
    data = _whole_file(fh)
    fh.seek(0)
    if not data.endswith(b"\xff\xd9"):
        return  # no EOI: Pillow itself reports the truncation
    missing = _progressive_scans_missing(data)
    if missing:
        raise InputImageError(f"{p}: cannot decode image (progressive JPEG is truncated: {missing})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # a progressive file's last scan is an AC refinement, which the 1/8 scale does not see:
            # compared at full scale (two more decodes, one at a time: no more memory than the read)
            full = _is_progressive(data)
            same = _jpeg_digest(data, full) == _jpeg_digest(data[:-2] + _JPEG_PROBE_PAD + data[-2:], full)
        except _DECODE_ERRORS as exc:
            raise _decode_error(p, exc) from None
    if not same:
        raise InputImageError(f"{p}: cannot decode image (JPEG image data is truncated: the file ends before its last scan)")


def _whole_file(fh: BinaryIO) -> bytes:
    fh.seek(0)
    return fh.read()


def _decode(p: Path, im: Image.Image, head: bytes, fh: BinaryIO) -> Picture:
    fmt = im.format or ""
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        log.warning("%s has %d frames; only the first frame is restored", p, frames)
        im.seek(0)
    if fmt in ("JPEG", "MPO"):
        _check_jpeg_complete(p, fh)
    pending_tiles = bool(im.tile)
    try:
        exif = im.getexif()
    except Exception as exc:  # a broken EXIF block must not lose the photo...
        if pending_tiles and not im.tile:
            # ...but reading it decoded the pixels (PNG keeps eXIf after IDAT) and that failed:
            # the image data is corrupt, and a second load() would return the partial pixels.
            raise _decode_error(p, exc) from None
        log.warning("%s: EXIF is unreadable and is not copied", p)
        exif = Image.Exif()
    orientation = _orientation(p, exif)
    # Before any pixels: a TIFF's EXIF reads its sub-IFDs lazily from the open file, and the
    # 8-bit path closes the image (and so the file) as soon as its pixels are copied.
    exif_out = _safe_exif(p, exif, fmt)
    icc = im.info.get("icc_profile") or None
    if icc is not None and not isinstance(icc, bytes):
        icc = None
    dpi = im.info.get("dpi")
    alpha_from_color = False
    mode = im.mode
    if fmt == "PNG" and png16.needs_png16(head):
        if "transparency" in im.info:
            log.warning("%s: the tRNS transparency colour of a 16-bit PNG is not kept", p)
        fh.seek(0)
        pixels, info = png16.decode(fh)
        icc = info.get("icc_profile", icc)
        alpha_from_color = pixels.shape[2] in (2, 4)
    elif fmt == "TIFF" and tiff16.is_rgb16(im.tag_v2) and _tiff16_ok(p, im):
        pixels = tiff16.decode(_whole_file(fh), im.tag_v2, im.tag_v2._endian)
        alpha_from_color = pixels.shape[2] == 4
    elif mode.startswith("I;16") or mode == "I":
        if mode.endswith("S") or (fmt == "TIFF" and 2 in _as_tuple(im.tag_v2.get(339, 1))):
            bits = max(_as_tuple(im.tag_v2.get(258, 16))) if fmt == "TIFF" else 16
            raise InputImageError(f"{p}: signed {bits}-bit integer images are not supported")
        arr = np.asarray(im)
        if mode == "I" and (arr.min(initial=0) < 0 or arr.max(initial=0) > 65535):
            raise InputImageError(f"{p}: 32-bit integer images are not supported")
        pixels = arr.astype(np.uint16)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    elif mode == "F":
        raise InputImageError(f"{p}: 32-bit float images are not supported")
    else:
        if mode == "CMYK" and icc:
            log.warning("%s: CMYK converted to RGB; its CMYK ICC profile is not copied", p)
            icc = None
        pixels = None
        color, alpha = _pixels_8bit(im)
    if pixels is not None:
        if pixels.ndim != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
            raise InputImageError(f"{p}: image has no pixels ({'x'.join(map(str, pixels.shape))})")
        if alpha_from_color:
            color, alpha = pixels[..., :-1], pixels[..., -1]
        else:
            color, alpha = pixels, None
        del pixels  # the contiguous copies below are all that is kept
    color = apply_orientation(np.ascontiguousarray(color), orientation)
    if alpha is not None:
        alpha = apply_orientation(np.ascontiguousarray(alpha), orientation)
    try:
        dpi = (float(dpi[0]), float(dpi[1])) if dpi else None
    except (TypeError, ValueError, IndexError):
        dpi = None
    if orientation in (5, 6, 7, 8) and dpi:
        dpi = (dpi[1], dpi[0])
    return Picture(
        color=color, alpha=alpha, icc_profile=icc, exif=exif_out,
        dpi=dpi, source_format=fmt, frames=frames,
    )


#: Bytes of Pillow pixels copied to numpy per band (counted at Pillow's 4 bytes per pixel).
_BAND_BYTES = 2 * 1024 * 1024


def _pixels_8bit(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an 8-bit image into (color (H, W, 1 | 3), alpha (H, W) or None), closing `im`.

    `im` is closed (for an opened file, that closes its file object too) once its pixels are
    copied. Memory matters here (issue 4: a 48 MP photo on a board): Pillow stores RGB, RGBA and
    LA at 4 bytes per pixel, and `np.asarray(im)` goes through `tobytes()`, whose chunks and
    joined copy coexist with the image. So: no `convert()` when the mode already is the target
    (it would copy the whole image); the pixels are copied into arrays allocated once, a band of
    rows at a time; and the Pillow image is released right after, so at most the decoded Pillow
    image and the numpy result exist at once.
    """
    target = _target_mode(im)
    if im.mode != target:
        converted = im.convert(target)
        im.close()  # the source pixels are not needed once converted (P, CMYK, 1, ...)
        im = converted
    w, h = im.size
    bands = len(im.getbands())
    has_alpha = bands in (2, 4)
    channels = bands - 1 if has_alpha else bands
    color = np.empty((h, w, channels), np.uint8)
    alpha = np.empty((h, w), np.uint8) if has_alpha else None
    step = max(1, _BAND_BYTES // (4 * w))
    try:
        for y in range(0, h, step):
            y1 = min(h, y + step)
            block = np.asarray(im.crop((0, y, w, y1))).reshape(y1 - y, w, bands)
            color[y:y1] = block[..., :channels]
            if alpha is not None:
                alpha[y:y1] = block[..., channels]
    finally:
        im.close()
    return color, alpha


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


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _target_mode(im: Image.Image) -> str:
    mode = im.mode
    if mode in ("L", "RGB") and "transparency" in im.info:
        return mode[0] + "A" if mode == "L" else "RGBA"  # a tRNS colour key becomes alpha (not dropped)
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


#: Longest file name most file systems take (ext4, XFS, APFS, NTFS: 255 bytes).
NAME_MAX = 255


def temp_prefix(target: Path) -> str:
    """The temporary-file prefix for `target`: ".<name>.<pid>." (the name shortened so that the
    whole temporary name, with mkstemp's 8 random characters and ".tmp", fits in NAME_MAX bytes).

    The PID says whose file it is: a later run removes only files whose owner is dead.
    """
    tail = f".{os.getpid()}."
    room = NAME_MAX - len(tail) - 1 - 8 - len(".tmp")
    name = os.fsencode(target.name)[:room].decode("utf-8", "ignore") if len(os.fsencode(target.name)) > room else target.name
    while len(os.fsencode(name)) > room:  # surrogate-escaped bytes: shorten by characters
        name = name[:-1]
    return f".{name}{tail}"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call write(file) on a temporary file beside `path`, then os.replace() it into place.

    The temporary file (see temp_prefix) is removed on any failure; OSErrors become OutputWriteError.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=target.parent)
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


class _EncoderOutput:
    """The file object handed to Pillow's encoders: every byte goes through `fh.write()`.

    Pillow writes straight to the descriptor of an object that has fileno(), bypassing the
    Python file object: a failing write then surfaces as "encoder error -N" with no errno (not
    "No space left on device"), and a wrapped file object never sees the bytes. Without
    fileno(), Pillow encodes in small chunks (64 KiB) and calls write(). tell() counts the bytes
    written, as `fh` starts empty (the TIFF writer asks for offsets); seek() only follows it.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._pos = 0

    def write(self, data: bytes) -> int:
        """Write all of `data` to the underlying file."""
        self._fh.write(data)
        size = memoryview(data).nbytes
        self._pos += size
        return size

    def tell(self) -> int:
        """Bytes written so far."""
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move within the file; a no-op for the current position (what Pillow's writers ask)."""
        target = offset if whence == os.SEEK_SET else self._pos + offset if whence == os.SEEK_CUR else None
        if target != self._pos:
            self._pos = self._fh.seek(offset, whence)
        return self._pos


def _band_planes(color: np.ndarray, alpha: np.ndarray | None, y0: int, y1: int, gray_to_rgb: bool) -> np.ndarray:
    """Rows [y0, y1) as the (k, W) or (k, W, C) uint8 planes Pillow takes (alpha appended last)."""
    block = color[y0:y1]
    if gray_to_rgb:
        block = np.repeat(block, 3, axis=2)
    if alpha is not None:
        block = np.concatenate([block, alpha[y0:y1, :, None]], axis=2)
    return np.ascontiguousarray(block[..., 0] if block.shape[2] == 1 else block)


def _pillow_image(color: np.ndarray, alpha: np.ndarray | None, gray_to_rgb: bool = False) -> Image.Image:
    """A Pillow image of 8-bit planes, filled a band of rows at a time.

    One whole-image `np.concatenate` (colour + alpha) or `np.repeat` (gray to RGB) would be a
    full-size temporary next to the Pillow image; band by band, the temporaries are a few MB.
    """
    h, w = color.shape[:2]
    channels = (3 if gray_to_rgb else color.shape[2]) + (alpha is not None)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    im = Image.new(mode, (w, h))
    step = max(1, _BAND_BYTES // (4 * w))
    for y in range(0, h, step):
        y1 = min(h, y + step)
        im.paste(Image.fromarray(_band_planes(color, alpha, y, y1, gray_to_rgb)), (0, y))
    return im


def save_image(
    fh: BinaryIO, picture: Picture, fmt: str, quality: int = DEFAULT_QUALITY, png_level: int = DEFAULT_PNG_LEVEL
) -> None:
    """Encode a Picture in a Pillow format name (PNG, JPEG, TIFF, WEBP, BMP) into the empty file `fh`.

    The encoded file is written as it is produced, never held whole in memory (except where
    the encoder itself builds it whole: WebP, and the numpy 16-bit PNG/TIFF codecs).
    """
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
        png16.write(fh, planes, icc_profile=icc, exif=exif_bytes, level=png_level)
        return
    if sixteen and fmt == "TIFF" and (color.shape[2] == 3 or alpha is not None):
        planes = color if alpha is None else np.concatenate([color, alpha[..., None]], axis=2)
        fh.write(tiff16.encode(planes, icc_profile=icc, exif=picture.exif))
        return
    if sixteen and fmt == "TIFF" and alpha is None:
        im = Image.fromarray(np.ascontiguousarray(color[..., 0]), mode=None)  # I;16
    else:
        if sixteen:
            log.warning("%s output is 8-bit: the 16-bit image is reduced to 8 bits", fmt)
            color = to_8bit(color)
            alpha = None if alpha is None else to_8bit(alpha)
        gray_to_rgb = fmt == "BMP" and alpha is not None and color.shape[2] == 1
        if gray_to_rgb:
            log.warning("BMP cannot store gray with alpha: written as RGBA")
        im = _pillow_image(color, alpha, gray_to_rgb)
    del color, alpha  # the Pillow image is what gets encoded; drop any 8-bit copies first
    kwargs: dict = {}
    if icc:
        kwargs["icc_profile"] = icc
    if exif_bytes:
        kwargs["exif"] = exif_bytes
    if picture.dpi and fmt in _DPI_FORMATS:
        kwargs["dpi"] = picture.dpi
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "PNG":
        kwargs["compress_level"] = int(png_level)
    try:
        im.save(_EncoderOutput(fh), format=fmt, **kwargs)
    finally:
        im.close()  # frees the pixels now, not whenever the caller's frame lets go


def encode_image(picture: Picture, fmt: str, quality: int = DEFAULT_QUALITY, png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """Encode a Picture in a Pillow format name (PNG, JPEG, TIFF, WEBP, BMP) into bytes."""
    buf = io.BytesIO()
    save_image(buf, picture, fmt, quality, png_level)
    return buf.getvalue()


def write_image(
    path: str | os.PathLike, picture: Picture, quality: int = DEFAULT_QUALITY, png_level: int = DEFAULT_PNG_LEVEL
) -> None:
    """Write a Picture atomically; the format comes from the extension (UsageError if unknown).

    The image is encoded straight into the temporary file (issue 4: a 48 MP PNG is over 100 MB
    encoded, which would otherwise sit in memory, twice, next to the pixels).
    """
    fmt = output_format(path)

    def encode_into(fh: BinaryIO) -> None:
        try:
            save_image(fh, picture, fmt, quality, png_level)
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputWriteError(f"cannot encode {path} as {fmt}: {exc}") from None
        except OSError as exc:
            if exc.errno is not None:  # the file system (disk full, I/O error): atomic_write says so
                raise
            # Pillow's encoder errors are OSErrors without an errno
            raise OutputWriteError(f"cannot encode {path} as {fmt}: {exc}") from None

    atomic_write(path, encode_into)


def side_by_side(before: Picture, after: Picture, labels: bool = True) -> Picture:
    """A Picture with `before` on the left and `after` on the right (for --compare).

    With `labels`, each half carries a small "before"/"after" label in its top-left corner, drawn
    over the pixels (the size stays 2W x H); a half too small for the label stays plain.
    """
    color = np.concatenate([before.color, after.color], axis=1)
    alpha = None
    if before.alpha is not None and after.alpha is not None:
        alpha = np.concatenate([before.alpha, after.alpha], axis=1)
    if labels:
        stamp_label(color, alpha, "before", 0, before.width)
        stamp_label(color, alpha, "after", before.width, after.width)
    return replace(after, color=color, alpha=alpha)
