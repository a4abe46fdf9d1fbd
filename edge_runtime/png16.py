"""16-bit PNG decode/encode in numpy + zlib, for what Pillow cannot keep at 16 bits.

Pillow reads 16-bit gray PNGs losslessly ("I;16") but reduces 16-bit RGB, RGBA and gray+alpha
PNGs to 8 bits. This module decodes those (non-interlaced) losslessly and writes 16-bit PNGs of
any colour type with the iCCP and eXIf chunks. Unfiltering runs as a wavefront over anti-diagonals,
so it costs O(H + W) numpy steps, not O(H * W) Python steps, whatever filters the writer chose.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type -> channels
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


#: Larger (decompressed) ICC profiles are dropped; real ones are a few KB to a few MB.
MAX_ICC_BYTES = 16 * 1024 * 1024


class PngError(ValueError):
    """Malformed or truncated PNG data."""


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) of a PNG, or None if `data` is not one."""
    if len(data) < 33 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


def needs_png16(data: bytes) -> bool:
    """True for the PNGs Pillow would reduce to 8 bits: 16-bit RGB / RGBA / gray+alpha."""
    head = png_header(data)
    return head is not None and head[2] == 16 and head[3] in (2, 4, 6)


def _chunks(data: bytes):
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            raise PngError("PNG is truncated (chunk runs past the end of the file)")
        body = data[start:end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise PngError(f"PNG chunk {ctype.decode('latin-1')!r} is corrupt (CRC mismatch)")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos = end + 4
    raise PngError("PNG is truncated (no IEND chunk)")


def decode(data: bytes) -> tuple[np.ndarray, dict[str, bytes]]:
    """Decode a non-interlaced 16-bit PNG to (H, W, C) uint16 plus {'icc_profile', 'exif'} bytes."""
    head = png_header(data)
    if head is None:
        raise PngError("not a PNG file")
    w, h, depth, ctype, interlace = head
    if depth != 16 or ctype not in _CHANNELS:
        raise PngError(f"only 16-bit gray/RGB/alpha PNGs are decoded here (depth {depth}, colour type {ctype})")
    if interlace:
        raise PngError("interlaced 16-bit PNGs are not supported")
    channels = _CHANNELS[ctype]
    idat: list[bytes] = []
    info: dict[str, bytes] = {}
    for ctype_, body in _chunks(data):
        if ctype_ == b"IDAT":
            idat.append(body)
        elif ctype_ == b"iCCP":
            name_end = body.find(b"\x00")
            if name_end >= 0 and name_end + 2 <= len(body):
                try:  # bounded: a zlib bomb in the profile must not exhaust memory
                    profile = zlib.decompressobj().decompress(body[name_end + 2 :], MAX_ICC_BYTES)
                    if len(profile) < MAX_ICC_BYTES:
                        info["icc_profile"] = profile
                except zlib.error:
                    pass
        elif ctype_ == b"eXIf":
            info["exif"] = b"Exif\x00\x00" + body
    bpp = 2 * channels
    stride = w * bpp
    expected = h * (stride + 1)
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise PngError(f"PNG image data is corrupt ({exc})") from None
    if len(raw) < expected:
        raise PngError("PNG image data is truncated")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    recon = unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, bpp))
    pixels = recon.reshape(h, w * channels, 2)
    values = (pixels[..., 0].astype(np.uint16) << 8) | pixels[..., 1]
    return values.reshape(h, w, channels), info


def unfilter(ftypes: np.ndarray, filtered: np.ndarray) -> np.ndarray:
    """Undo PNG filtering of (H, W, bpp) bytes with per-row filter types, as a diagonal wavefront."""
    h, w, bpp = filtered.shape
    if np.any(ftypes > 4):
        raise PngError("PNG uses an unknown row filter")
    if not np.any(ftypes > 2):  # None/Sub/Up only: fully vectorised
        out = np.empty((h, w, bpp), np.uint8)
        prev = np.zeros((w, bpp), np.uint8)
        for y in range(h):
            row = filtered[y]
            if ftypes[y] == 1:
                row = np.cumsum(row, axis=0, dtype=np.uint8)
            elif ftypes[y] == 2:
                row = row + prev
            out[y] = row
            prev = out[y]
        return out
    recon = np.zeros((h + 1, w + 1, bpp), np.int16)  # one row/column of zeros above and left
    filt = filtered.astype(np.int16)
    ft = ftypes.astype(np.int8)
    for d in range(h + w - 1):
        y0, y1 = max(0, d - w + 1), min(h, d + 1)
        ys = np.arange(y0, y1)
        xs = d - ys
        a = recon[ys + 1, xs]  # left
        b = recon[ys, xs + 1]  # up
        c = recon[ys, xs]  # up-left
        t = ft[ys][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.where(t == 1, a, np.where(t == 2, b, np.where(t == 3, (a + b) >> 1, np.where(t == 4, paeth, 0))))
        recon[ys + 1, xs + 1] = (filt[ys, xs] + pred) & 0xFF
    return recon[1:, 1:].astype(np.uint8)


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _filter_rows(raw: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Filter a block of rows (h, w, bpp) int16 given the row above it; returns (h, 1 + w*bpp) uint8."""
    h, w, bpp = raw.shape
    zero_col = np.zeros((h, 1, bpp), np.int16)
    up = np.concatenate([above[None], raw[:-1]], axis=0)
    left = np.concatenate([zero_col, raw[:, :-1]], axis=1)
    upleft = np.concatenate([zero_col, up[:, :-1]], axis=1)
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = np.stack([raw, raw - left, raw - up, raw - paeth]) & 0xFF  # filter types 0, 1, 2, 4
    cost = np.where(candidates > 127, 256 - candidates, candidates).reshape(4, h, -1).sum(axis=2)
    choice = np.argmin(cost, axis=0)
    rows = candidates[choice, np.arange(h)].astype(np.uint8).reshape(h, -1)
    ftype = np.array([0, 1, 2, 4], np.uint8)[choice][:, None]
    return np.concatenate([ftype, rows], axis=1)


def encode(
    pixels: np.ndarray,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    level: int = 6,
    block_rows: int = 64,
) -> bytes:
    """Encode (H, W, C) or (H, W) uint16 as a 16-bit PNG (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    Each row gets the filter (None, Sub, Up or Paeth) with the smallest sum of absolute values;
    rows are filtered and compressed in blocks, so memory stays a few blocks of rows.
    """
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w, channels = pixels.shape
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"cannot write {channels} channels to PNG")
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    compressor = zlib.compressobj(level)
    parts: list[bytes] = []
    above = np.zeros((w, bpp), np.int16)
    for r0 in range(0, h, block_rows):
        block = np.ascontiguousarray(pixels[r0 : r0 + block_rows], ">u2").view(np.uint8)
        raw = block.reshape(block.shape[0], w, bpp).astype(np.int16)
        parts.append(compressor.compress(_filter_rows(raw, above).tobytes()))
        above = raw[-1]
    parts.append(compressor.flush())
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        out.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    out.append(_chunk(b"IDAT", b"".join(parts)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)
