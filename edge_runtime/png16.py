"""16-bit PNG decode/encode in numpy + zlib, for what Pillow cannot keep at 16 bits.

Pillow reads 16-bit gray PNGs losslessly ("I;16") but reduces 16-bit RGB, RGBA and gray+alpha
PNGs to 8 bits. This module decodes those (non-interlaced) losslessly and writes 16-bit PNGs of
any colour type with the iCCP and eXIf chunks. Unfiltering runs as a wavefront over anti-diagonals,
so it costs O(H + W) numpy steps, not O(H * W) Python steps, whatever filters the writer chose.

Why hand-written (issue 18 asked for a library where one passes the hostile suite and the memory
bound): pypng 0.20220715 decodes exactly the same pixels but in pure Python, 0.95 s for a 0.5 MP
16-bit RGB PNG against 0.08 s here (about 23 s against 1 s at 12 MP, on this 2-core machine);
OpenCV is not a runtime dependency; Pillow reduces these files to 8 bits. Memory, streamed:
a 12 MP 16-bit PNG through the CLI peaks at 305.5 MiB (bound 314.7 MiB; 640.6 MiB before).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

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


#: Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
#: Filtered bytes unfiltered per block: bounds the int16 wavefront buffers (~4x this) while
#: keeping the per-block numpy steps (rows + width) few.
BLOCK_BYTES = 4 * 1024 * 1024


def _chunks(fh: BinaryIO):
    """(type, body) of each chunk after the signature, CRC-checked, read one at a time from `fh`."""
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise PngError("PNG is truncated (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            raise PngError("PNG chunk length is invalid")
        body = fh.read(length)
        crc = fh.read(4)
        if len(body) < length or len(crc) < 4:
            raise PngError("PNG is truncated (chunk runs past the end of the file)")
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != struct.unpack(">I", crc)[0]:
            raise PngError(f"PNG chunk {ctype.decode('latin-1')!r} is corrupt (CRC mismatch)")
        yield ctype, body
        if ctype == b"IEND":
            return


def _passes(w: int, h: int, interlace: int) -> list[tuple[int, int, int, int, int, int]]:
    """(x0, y0, dx, dy, pass width, pass height) of each non-empty pass."""
    layout = _ADAM7 if interlace else ((0, 0, 1, 1),)
    out = []
    for x0, y0, dx, dy in layout:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            out.append((x0, y0, dx, dy, pw, ph))
    return out


class _Rows:
    """Turns the inflated IDAT stream into unfiltered pixel rows, pass by pass, a block at a time."""

    def __init__(self, out: np.ndarray, interlace: int) -> None:
        h, w, channels = out.shape
        self.out, self.bpp = out, 2 * channels
        self.passes = _passes(w, h, interlace)
        self.expected = sum(ph * (pw * self.bpp + 1) for *_, pw, ph in self.passes)
        self.inflater = zlib.decompressobj()
        self.buf = bytearray()
        self.produced = 0
        self.index, self.row, self.prev = 0, 0, None

    def feed(self, data: bytes) -> None:
        tail = data
        while tail and self.produced < self.expected:
            try:  # never inflate more than the image needs: a zlib bomb stops here
                piece = self.inflater.decompress(tail, min(BLOCK_BYTES, self.expected - self.produced))
            except zlib.error as exc:
                raise PngError(f"PNG image data is corrupt ({exc})") from None
            tail = self.inflater.unconsumed_tail
            self.produced += len(piece)
            self.buf += piece
            self._drain(final=False)
            if not piece and not tail:
                break

    def finish(self) -> None:
        self._drain(final=True)
        if self.index < len(self.passes):
            raise PngError("PNG image data is truncated")

    def _drain(self, final: bool) -> None:
        while self.index < len(self.passes):
            x0, y0, dx, dy, pw, ph = self.passes[self.index]
            stride = pw * self.bpp + 1
            want = min(ph - self.row, max(1, BLOCK_BYTES // stride))
            have = len(self.buf) // stride
            if have < want and not (final and have):
                return
            k = min(want, have)
            rows = np.frombuffer(bytes(self.buf[: k * stride]), np.uint8).reshape(k, stride)
            del self.buf[: k * stride]
            recon = unfilter(rows[:, 0], rows[:, 1:].reshape(k, pw, self.bpp), self.prev)
            self.prev = recon[-1]
            values = recon.reshape(k, pw, -1, 2)
            block = (values[..., 0].astype(np.uint16) << 8) | values[..., 1]
            r0 = y0 + dy * self.row
            self.out[r0 : r0 + dy * k : dy, x0::dx] = block
            self.row += k
            if self.row == ph:
                self.index, self.row, self.prev = self.index + 1, 0, None


def decode(source: bytes | BinaryIO) -> tuple[np.ndarray, dict[str, bytes]]:
    """Decode a 16-bit PNG (interlaced or not) to (H, W, C) uint16 plus {'icc_profile', 'exif'} bytes.

    Streamed: chunks are read one at a time, the image data is inflated and unfiltered a block of
    rows at a time straight into the result, so memory is the result plus a few blocks (the
    earlier whole-file version peaked at 667 MiB for a 12 MP RGB PNG; issue 18). Adam7 interlacing
    is decoded pass by pass (Pillow reads such files at 8 bits, nearly black, for 16-bit RGB).
    """
    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    head = fh.read(33)
    header = png_header(head)
    if header is None:
        raise PngError("not a PNG file")
    w, h, depth, ctype, interlace = header
    if depth != 16 or ctype not in _CHANNELS:
        raise PngError(f"only 16-bit gray/RGB/alpha PNGs are decoded here (depth {depth}, colour type {ctype})")
    if interlace not in (0, 1) or w < 1 or h < 1:
        raise PngError(f"PNG header is invalid ({w}x{h}, interlace {interlace})")
    (ihdr_crc,) = struct.unpack(">I", head[29:33])
    if zlib.crc32(head[12:29]) & 0xFFFFFFFF != ihdr_crc:
        raise PngError("PNG chunk 'IHDR' is corrupt (CRC mismatch)")
    out = np.empty((h, w, _CHANNELS[ctype]), np.uint16)
    rows = _Rows(out, interlace)
    info: dict[str, bytes] = {}
    for ctype_, body in _chunks(fh):
        if ctype_ == b"IDAT":
            rows.feed(body)
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
    rows.finish()
    return out, info


def unfilter(ftypes: np.ndarray, filtered: np.ndarray, above: np.ndarray | None = None) -> np.ndarray:
    """Undo PNG filtering of (H, W, bpp) bytes with per-row filter types, as a diagonal wavefront.

    `above` is the unfiltered row before the first one (None: the top of the image or pass).
    """
    h, w, bpp = filtered.shape
    if np.any(ftypes > 4):
        raise PngError("PNG uses an unknown row filter")
    if not np.any(ftypes > 2):  # None/Sub/Up only: fully vectorised
        out = np.empty((h, w, bpp), np.uint8)
        prev = np.zeros((w, bpp), np.uint8) if above is None else above
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
    if above is not None:
        recon[0, 1:] = above
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
    """Encode (H, W, C) or (H, W) uint16 as a 16-bit PNG (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA); see write()."""
    buf = io.BytesIO()
    write(buf, pixels, icc_profile, exif, level, block_rows)
    return buf.getvalue()


def write(
    fh: BinaryIO,
    pixels: np.ndarray,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    level: int = 6,
    block_rows: int = 64,
) -> None:
    """Write (H, W, C) or (H, W) uint16 as a 16-bit PNG into `fh`, one IDAT chunk per block of rows.

    Each row gets the filter (None, Sub, Up or Paeth) with the smallest sum of absolute values;
    rows are filtered, compressed and written in blocks, so memory stays a few blocks of rows
    (the whole compressed file is never held: 70 MB for a 12 MP photo).
    """
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w, channels = pixels.shape
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"cannot write {channels} channels to PNG")
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    fh.write(SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)))
    if icc_profile:
        fh.write(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        fh.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    compressor = zlib.compressobj(level)
    above = np.zeros((w, bpp), np.int16)
    for r0 in range(0, h, block_rows):
        block = np.ascontiguousarray(pixels[r0 : r0 + block_rows], ">u2").view(np.uint8)
        raw = block.reshape(block.shape[0], w, bpp).astype(np.int16)
        data = compressor.compress(_filter_rows(raw, above).tobytes())
        if data:
            fh.write(_chunk(b"IDAT", data))
        above = raw[-1]
    fh.write(_chunk(b"IDAT", compressor.flush()))
    fh.write(_chunk(b"IEND", b""))
