"""16-bit RGB(A) and gray + alpha TIFF read/write in numpy + zlib, for what Pillow cannot keep at 16 bits.

Pillow reads and writes 16-bit gray TIFFs ("I;16") but reduces 16-bit RGB(A) TIFFs to 8 bits,
and cannot open 16-bit gray + alpha ones (their tags are read with its directory parser here).
This module reads the common baseline layout losslessly (strips, chunky samples, no compression
or Deflate, horizontal predictor or none) using the tags Pillow already parsed, and writes 16-bit
RGB(A) TIFFs (Deflate + horizontal predictor) with the ICC profile and EXIF tags, serialising the
directory with Pillow's own ImageFileDirectory_v2.

Why not tifffile (issue 18, item 8; measured with scripts/tiff16_vs_tifffile.py, tifffile
2026.3.3 without imagecodecs, x86_64, 2 shared cores): on a 12 MP 16-bit RGB Deflate+predictor
TIFF tifffile is faster (0.54 s vs 0.77 s) but its tracemalloc peak is 198 MiB against 137 MiB
here (decoded image 69 MiB); a 1 MB TIFF whose 1x64 strip inflates to 1 GiB peaks at 2094 MiB in
tifffile (it inflates whole strips) and 3 MiB here (inflation stops at what the strip needs).
Truncated and corrupt strips are refused by both. The memory bound and the bomb decide it, and
tifffile would be a new runtime dependency: tiff16 stays.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

# Baseline tag numbers.
WIDTH, LENGTH, BITS, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES, ROWS_PER_STRIP, STRIP_COUNTS, PLANAR = 273, 277, 278, 279, 284
PREDICTOR, EXTRA_SAMPLES, TILE_WIDTH, ICC, EXIF_IFD, GPS_IFD = 317, 338, 322, 34675, 34665, 34853
_STRUCTURAL = {
    WIDTH, LENGTH, BITS, COMPRESSION, PHOTOMETRIC, STRIP_OFFSETS, SAMPLES, ROWS_PER_STRIP, STRIP_COUNTS,
    PLANAR, PREDICTOR, EXTRA_SAMPLES, TILE_WIDTH, 323, 324, 325, ICC, 0x0112, 0x8769, 0x8825, 330, 254, 255,
}
_DEFLATE = (8, 32946)


class TiffError(ValueError):
    """A 16-bit TIFF this module cannot read (the caller may fall back to Pillow at 8 bits)."""


def is_rgb16(tags) -> bool:
    """True for a 16-bit RGB or RGBA TIFF page (Pillow would reduce it to 8 bits)."""
    bits = tags.get(BITS)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return tags.get(PHOTOMETRIC) == 2 and tags.get(SAMPLES, 1) in (3, 4) and all(b == 16 for b in bits)


def is_gray_alpha16(tags) -> bool:
    """True for a 16-bit gray + alpha page (Pillow 13 cannot open it at all: issue 18, item 17)."""
    bits = _tuple(tags.get(BITS))
    return (tags.get(PHOTOMETRIC) in (0, 1) and tags.get(SAMPLES, 1) == 2 and bits == (16, 16)
            and _tuple(tags.get(EXTRA_SAMPLES)) in ((1,), (2,)))


def first_page_tags(fh: BinaryIO):
    """The first page's tags (an ImageFileDirectory_v2, Pillow's own parser) of a TIFF file whose
    layout Pillow's image plugin refuses; TiffError if the header or directory is unreadable."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    fh.seek(0)
    try:
        ifd = ImageFileDirectory_v2(fh.read(8))
        fh.seek(ifd.next)
        ifd.load(fh)
    except (SyntaxError, ValueError, OSError, struct.error, KeyError, TypeError) as exc:
        raise TiffError(f"TIFF directory is unreadable ({exc})") from None
    return ifd


def gray_alpha(pixels: np.ndarray, tags) -> np.ndarray:
    """Decoded (H, W, 2) gray + alpha as black-is-0 gray with unassociated alpha."""
    if tags.get(PHOTOMETRIC) == 0:  # WhiteIsZero
        np.subtract(65535, pixels[..., 0], out=pixels[..., 0])
    if _tuple(tags.get(EXTRA_SAMPLES)) == (1,):  # associated (premultiplied): divide it out
        alpha = pixels[..., 1].astype(np.float32)
        gray = pixels[..., 0] * (65535.0 / np.maximum(alpha, 1.0))
        pixels[..., 0] = np.rint(np.clip(gray, 0, 65535)).astype(np.uint16)
    return pixels


def _tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def decode(data: bytes, tags, endian: str) -> np.ndarray:
    """(H, W, spp) uint16 of the page described by Pillow's `tags` (im.tag_v2), file bytes `data`."""
    w, h, spp = int(tags[WIDTH]), int(tags[LENGTH]), int(tags.get(SAMPLES, 1))
    compression, predictor = tags.get(COMPRESSION, 1), tags.get(PREDICTOR, 1)
    if TILE_WIDTH in tags:
        raise TiffError("tiled 16-bit TIFFs are not supported")
    if tags.get(PLANAR, 1) != 1:
        raise TiffError("planar (non-interleaved) 16-bit TIFFs are not supported")
    if compression not in (1, *_DEFLATE):
        raise TiffError(f"16-bit TIFF compression {compression} is not supported (only none and Deflate)")
    if predictor not in (1, 2):
        raise TiffError(f"TIFF predictor {predictor} is not supported")
    offsets, counts = tags.get(STRIP_OFFSETS), tags.get(STRIP_COUNTS)
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    rows_per_strip = int(tags.get(ROWS_PER_STRIP, h))
    if rows_per_strip < 1 or w < 1 or h < 1:
        raise TiffError(f"TIFF layout is invalid ({w}x{h}, {rows_per_strip} rows per strip)")
    if offsets is None or counts is None or len(offsets) != len(counts):
        raise TiffError("TIFF strip offsets and byte counts do not match")
    row_bytes = w * spp * 2
    out = np.empty((h, w, spp), np.uint16)
    dtype = np.dtype(endian + "u2")
    row = 0
    for offset, count in zip(offsets, counts):
        if row >= h:
            break
        if not (isinstance(offset, int) and isinstance(count, int)) or offset < 0 or count < 0:
            raise TiffError("TIFF strip offset or byte count is invalid")
        chunk = data[offset : offset + count]
        if len(chunk) < count:
            raise TiffError("TIFF is truncated (strip runs past the end of the file)")
        n = min(rows_per_strip, h - row)
        if compression in _DEFLATE:
            try:  # inflate no more than the strip needs: a zlib bomb stops here
                chunk = zlib.decompressobj().decompress(chunk, n * row_bytes)
            except zlib.error as exc:
                raise TiffError(f"TIFF strip is corrupt ({exc})") from None
        if len(chunk) < n * row_bytes:
            raise TiffError("TIFF strip is truncated")
        strip = np.frombuffer(chunk, dtype, n * w * spp).reshape(n, w, spp)
        if predictor == 2:
            strip = np.cumsum(strip, axis=1, dtype=np.uint16)
        out[row : row + n] = strip
        row += n
    if row < h:
        raise TiffError("TIFF is truncated (missing strips)")
    return out


def encode(pixels: np.ndarray, icc_profile: bytes | None = None, exif=None, rows_per_strip: int = 64) -> bytes:
    """Encode (H, W, 3|4) uint16 as a little-endian Deflate TIFF with horizontal predictor.

    `exif` is a PIL.Image.Exif (or None): its IFD0 tags and its Exif sub-IFD are written.
    """
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    h, w, spp = pixels.shape
    if spp not in (2, 3, 4):
        raise ValueError(f"16-bit TIFF writer takes 2 (gray + alpha), 3 or 4 channels, got {spp}")
    strips = []
    for r0 in range(0, h, rows_per_strip):
        block = np.ascontiguousarray(pixels[r0 : r0 + rows_per_strip], "<u2")
        diff = block.copy()
        diff[:, 1:] = block[:, 1:] - block[:, :-1]  # horizontal predictor, wraps mod 2^16
        strips.append(zlib.compress(diff.tobytes(), 6))

    ifd = ImageFileDirectory_v2(prefix=b"II")
    if exif is not None:
        for tag, value in exif.items():
            if tag not in _STRUCTURAL:
                ifd[tag] = value
        sub = exif.get_ifd(0x8769)
        if sub:
            ifd[EXIF_IFD] = dict(sub)
    ifd[WIDTH], ifd[LENGTH] = w, h
    ifd[BITS] = (16,) * spp
    ifd[COMPRESSION] = 8
    ifd[PHOTOMETRIC] = 2 if spp >= 3 else 1  # RGB, or BlackIsZero gray
    ifd[SAMPLES] = spp
    ifd[ROWS_PER_STRIP] = rows_per_strip
    ifd[PLANAR] = 1
    ifd[PREDICTOR] = 2
    if spp in (2, 4):
        ifd[EXTRA_SAMPLES] = 2  # unassociated alpha
    if icc_profile:
        ifd[ICC] = icc_profile
    # Strip offsets are given relative to the end of the directory: Pillow's writer shifts them.
    starts = np.cumsum([0] + [len(s) for s in strips[:-1]])
    ifd[STRIP_OFFSETS] = tuple(int(x) for x in starts)
    ifd[STRIP_COUNTS] = tuple(len(s) for s in strips)
    ifd.tagtype[STRIP_OFFSETS] = ifd.tagtype[STRIP_COUNTS] = 4  # LONG
    header = b"II*\x00" + struct.pack("<I", 8)
    return header + ifd.tobytes(8) + b"".join(strips)
