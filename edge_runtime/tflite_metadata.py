"""Read named metadata out of a .tflite flatbuffer with the standard library only.

The exporter stamps the model contract into the TFLite `Model.metadata` list (name + buffer
index), so one .tflite file is the whole model. This reader walks just enough of the
flatbuffer to find it, with bounds checks on every offset, so a truncated or hostile file gives
a clean error instead of a crash.
"""

from __future__ import annotations

import struct

from .contract import METADATA_KEY, ContractError, ModelContract

TFLITE_IDENTIFIER = b"TFL3"
# Field slots in the TFLite schema (schema.fbs, table Model / Metadata / Buffer).
_MODEL_BUFFERS = 4
_MODEL_METADATA = 6
_METADATA_NAME = 0
_METADATA_BUFFER = 1
_BUFFER_DATA = 0
_BUFFER_OFFSET = 1
_BUFFER_SIZE = 2


class FlatbufferError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def _unpack(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise FlatbufferError(f"offset {pos} out of bounds (file is {len(self.data)} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def field_pos(self, table: int, slot: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vtable)
        entry = 4 + 2 * slot
        if entry + 2 > vt_size:
            return None
        rel = self._unpack("<H", vtable + entry)
        return table + rel if rel else None

    def table_field(self, table: int, slot: int) -> int | None:
        pos = self.field_pos(table, slot)
        return None if pos is None else self.deref(pos)

    def scalar_field(self, table: int, slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field_pos(table, slot)
        return default if pos is None else self._unpack(fmt, pos)

    def vector(self, pos: int) -> tuple[int, int]:
        """(length, position of first element)."""
        length = self.u32(pos)
        if pos + 4 + length > len(self.data):
            raise FlatbufferError("vector runs past the end of the file")
        return length, pos + 4

    def table_vector(self, table: int, slot: int) -> list[int]:
        pos = self.table_field(table, slot)
        if pos is None:
            return []
        length, start = self.vector(pos)
        if start + 4 * length > len(self.data):
            raise FlatbufferError("table vector runs past the end of the file")
        return [self.deref(start + 4 * i) for i in range(length)]

    def string(self, pos: int) -> str:
        length, start = self.vector(pos)
        return self.data[start : start + length].decode("utf-8", errors="replace")

    def byte_vector(self, pos: int) -> bytes:
        length, start = self.vector(pos)
        return self.data[start : start + length]


def read_metadata(data: bytes) -> dict[str, bytes]:
    """All named metadata entries of a TFLite model, as raw bytes."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise FlatbufferError("not a TFLite model (missing 'TFL3' file identifier)")
    reader = _Reader(data)
    root = reader.deref(0)
    buffers = reader.table_vector(root, _MODEL_BUFFERS)
    entries: dict[str, bytes] = {}
    for meta in reader.table_vector(root, _MODEL_METADATA):
        name_pos = reader.table_field(meta, _METADATA_NAME)
        name = reader.string(name_pos) if name_pos is not None else ""
        index = reader.scalar_field(meta, _METADATA_BUFFER, "<I")
        if index >= len(buffers):
            raise FlatbufferError(f"metadata {name!r} points at buffer {index} of {len(buffers)}")
        entries[name] = _buffer_bytes(reader, buffers[index])
    return entries


def _buffer_bytes(reader: _Reader, buffer: int) -> bytes:
    data_pos = reader.table_field(buffer, _BUFFER_DATA)
    if data_pos is not None:
        return reader.byte_vector(data_pos)
    # Large models keep buffers after the flatbuffer, addressed by absolute offset and size.
    offset = reader.scalar_field(buffer, _BUFFER_OFFSET, "<Q")
    size = reader.scalar_field(buffer, _BUFFER_SIZE, "<Q")
    if offset + size > len(reader.data):
        raise FlatbufferError("buffer runs past the end of the file")
    return reader.data[offset : offset + size]


def read_contract(data: bytes) -> ModelContract:
    """The edge-restore contract embedded in a TFLite model, or ContractError if it has none."""
    entries = read_metadata(data)
    if METADATA_KEY not in entries:
        raise ContractError(
            f"model carries no '{METADATA_KEY}' metadata; export it with `python -m export` "
            "so the runtime knows its value range and tile size"
        )
    return ModelContract.from_json(entries[METADATA_KEY])
