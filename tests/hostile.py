"""Builders of hostile and broken image files, shared by the hostile-input tests and the fuzz seeds."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode(pixels: np.ndarray, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **save)
    return buf.getvalue()


def noise(shape=(24, 20, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ----------------------------------------------------------------------------------- bombs


def png_bomb(width=100_000, height=100_000) -> bytes:
    """A PNG header claiming width x height 8-bit RGB pixels, with (almost) no data: ~70 bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def jpeg_bomb(width=60_000, height=60_000) -> bytes:
    data = bytearray(encode(noise((8, 8, 3)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_bomb(width=65_535, height=65_535) -> bytes:
    data = bytearray(encode(noise((5, 3), 1), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    desc = data.index(b"\x2c", 13)  # image descriptor
    struct.pack_into("<HH", data, desc + 5, width, height)
    return bytes(data)


def _tiff_set(data: bytearray, values: dict[int, int]) -> bytes:
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag, typ = struct.unpack_from("<HH", data, entry)
        if tag in values:
            struct.pack_into("<I" if typ == 4 else "<H", data, entry + 8, values[tag])
    return bytes(data)


def tiff_bomb(width=100_000, height=100_000) -> bytes:
    return _tiff_set(bytearray(encode(noise((5, 4, 3)), "TIFF")), {256: width, 257: height})


def bmp_bomb(width=30_000, height=30_000) -> bytes:
    data = bytearray(encode(noise((5, 4, 3)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


BOMBS = {"png": png_bomb, "jpg": jpeg_bomb, "gif": gif_bomb, "tif": tiff_bomb, "bmp": bmp_bomb}

# ------------------------------------------------------------------------------ 0 x N images


def png_zero(width=0, height=5) -> bytes:
    return png_bomb(width, height)


def gif_zero() -> bytes:
    return gif_bomb(0, 5)


def bmp_zero() -> bytes:
    return bmp_bomb(0, 5)


def jpeg_zero() -> bytes:
    return jpeg_bomb(8, 0)


def tiff_zero() -> bytes:
    return tiff_bomb(0, 5)


ZERO = {"png": png_zero, "gif": gif_zero, "bmp": bmp_zero, "jpg": jpeg_zero, "tif": tiff_zero}

# ------------------------------------------------------------------------------------ EXIF


def exif_block(entries: list[tuple[int, int, int, bytes]], extra: bytes = b"") -> bytes:
    """'Exif\\0\\0' + little-endian TIFF with IFD0 entries (tag, type, count, value bytes <= 4)."""
    body = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")[:4]
    return b"Exif\x00\x00" + body + b"\x00\x00\x00\x00" + extra


def jpeg_with_app1(payload: bytes, shape=(6, 8, 3)) -> bytes:
    data = encode(noise(shape, 3), "JPEG", quality=95)
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


MALFORMED_EXIF = {
    "orientation_is_text": exif_block([(0x0112, 2, 4, b"abc\x00")]),
    "orientation_99": exif_block([(0x0112, 3, 1, struct.pack("<H", 99))]),
    "orientation_two_values": exif_block([(0x0112, 3, 2, struct.pack("<HH", 6, 3))]),
    "orientation_value_past_end": exif_block([(0x0112, 3, 5, struct.pack("<I", 0xFFF0))]),
    "not_tiff": b"Exif\x00\x00\x13\x37garbage, not a TIFF header",
    "ifd_offset_past_end": b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",
    "entry_count_past_end": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00",
    "exif_ifd_points_to_itself": exif_block([(0x8769, 4, 1, struct.pack("<I", 8))]),
}

# ---------------------------------------------------------------------- other formats


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    b"%%EndComments\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def ppm() -> bytes:
    return encode(noise((6, 5, 3)), "PPM")


def ico() -> bytes:
    return encode(noise((16, 16, 3)), "ICO")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
