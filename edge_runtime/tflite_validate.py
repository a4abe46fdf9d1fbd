"""Structural validation of a .tflite flatbuffer before any interpreter sees the bytes.

The TFLite interpreter trusts much of what a model file says: tensor indices, shapes, buffer
sizes, quantization vectors, subgraph indices. A hostile or corrupt file can make it read out of
bounds, allocate without limit or crash. `validate_tflite()` walks the whole model with the
bounds-checked reader of tflite_metadata (standard library only) and refuses, with one
FlatbufferError line, anything an image-restoration model has no business containing:

* offsets, vtables, vectors and strings outside the file; a walk bigger than the file warrants;
* a schema version other than 3; no subgraph;
* tensor indices out of range in subgraph inputs/outputs, operators and signatures; an operator
  writing into a constant tensor; an operator code index or builtin operator code out of range;
* negative dimensions, rank above MAX_RANK, tensors over MAX_TENSOR_BYTES, unknown tensor
  types and STRING / RESOURCE / VARIANT tensors;
* buffer indices out of range, constant data whose size does not match the tensor's shape and
  type, buffers or custom options placed outside the file, external buffers;
* quantization with mismatched scale / zero-point lengths, a bad quantized dimension, scales
  outside SCALE_RANGE, zero points outside their type's range, int8/uint8/int16 tensors without
  quantization (the last three crash LiteRT 2.x outright: found by fuzzing the interpreter); tensor and signature names that are not UTF-8; sparse tensors; operators that call other subgraphs (IF, WHILE,
  CALL_ONCE, StableHLO control flow) -- a restoration network is one straight graph.

It returns a ModelSummary with subgraph 0's input and output tensors (shape, dtype name,
quantization), which the runtime checks against the model contract before building the
interpreter.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .tflite_metadata import TFLITE_IDENTIFIER, FlatbufferError, _Reader

#: Highest tensor rank accepted (TFLite kernels use at most 6; images need 4).
MAX_RANK = 8
#: Largest tensor accepted, in bytes (a 1 GiB activation is far beyond any board).
MAX_TENSOR_BYTES = 1 << 30
#: Largest model file accepted by the pure-python walk (the interpreter needs it in memory anyway).
MAX_MODEL_BYTES = 1 << 31
#: Most elements (vector entries, table fields) one walk may read: a multiple of the file size.
WORK_PER_BYTE = 16
SCHEMA_VERSION = 3

# TensorType -> (name, bits per element); None: variable-size or opaque, refused.
TENSOR_TYPES: dict[int, tuple[str, int | None]] = {
    0: ("float32", 32), 1: ("float16", 16), 2: ("int32", 32), 3: ("uint8", 8), 4: ("int64", 64),
    5: ("string", None), 6: ("bool", 8), 7: ("int16", 16), 8: ("complex64", 64), 9: ("int8", 8),
    10: ("float64", 64), 11: ("complex128", 128), 12: ("uint64", 64), 13: ("resource", None),
    14: ("variant", None), 15: ("uint32", 32), 16: ("uint16", 16), 17: ("int4", 4), 18: ("bfloat16", 16),
    19: ("int2", 2), 20: ("uint4", 4), 21: ("float8_e4m3fn", 8), 22: ("float8_e5m2", 8),
}
#: Zero-point range of quantized integer types; int16/int32/int64 are symmetric (zero point 0).
ZERO_POINT_RANGE = {
    "int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1),
    "int16": (0, 0), "int32": (0, 0), "int64": (0, 0),
}
#: Integer types whose values mean nothing without a scale and zero point.
QUANTIZED_TYPES = frozenset({"int8", "uint8", "int16", "int4", "uint4", "int2"})
#: Accepted quantization scales. Found by fuzzing the interpreter: a scale of 1e-38 (and zero
#: points outside the type's range) make LiteRT 2.x crash instead of refusing the model.
SCALE_RANGE = (1e-20, 1e20)
#: Highest BuiltinOperator code this validator knows (schema of LiteRT 2.x: STABLEHLO_CASE = 209).
MAX_BUILTIN_OP = 209
#: Operators that run other subgraphs: refused (a restoration model is one straight graph).
SUBGRAPH_OPS = {
    31: "CALL", 118: "IF", 119: "WHILE", 129: "CALL_ONCE", 174: "STABLEHLO_REDUCE", 190: "STABLEHLO_SCATTER",
    198: "STABLEHLO_REDUCE_WINDOW", 199: "STABLEHLO_SORT", 200: "STABLEHLO_WHILE", 206: "STABLEHLO_COMPOSITE",
    209: "STABLEHLO_CASE", 51: "DELEGATE",
}

# Field slots of schema.fbs tables.
_MODEL_VERSION, _MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 0, 1, 2, 4
_MODEL_METADATA_BUFFER, _MODEL_METADATA, _MODEL_SIGNATURES = 5, 6, 7
_MODEL_EXT_GROUPS, _MODEL_EXT_BUFFERS = 8, 9
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 0, 1, 2, 3
_T_NAME = 3
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_QUANT, _T_SPARSITY, _T_SIGNATURE, _T_VARIANTS, _T_EXTERNAL = 0, 1, 2, 4, 6, 7, 9, 10
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_CUSTOM, _OP_INTERMEDIATES = 0, 1, 2, 5, 8
_OP_LARGE_OFFSET, _OP_LARGE_SIZE = 9, 10
_OC_DEPRECATED, _OC_BUILTIN = 0, 3
_B_DATA, _B_OFFSET, _B_SIZE = 0, 1, 2
_Q_SCALE, _Q_ZERO, _Q_DETAILS_TYPE, _Q_DIM = 2, 3, 4, 6
_SIG_INPUTS, _SIG_OUTPUTS, _SIG_SUBGRAPH = 0, 1, 4
_TM_NAME, _TM_INDEX = 0, 1
_SIG_KEY = 2


@dataclass(frozen=True)
class TensorInfo:
    index: int
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelSummary:
    """What the runtime needs to know before handing the bytes to an interpreter."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    subgraphs: int
    operators: int
    tensors: int
    custom_ops: tuple[str, ...] = ()


class _Walker(_Reader):
    """_Reader plus typed scalar vectors and a work budget."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.budget = WORK_PER_BYTE * len(data) + 4096

    def spend(self, n: int) -> None:
        self.budget -= n + 1
        if self.budget < 0:
            raise FlatbufferError("model structure is too large for its file size (hostile or corrupt file)")

    def table(self, pos: int) -> int:
        """Check that a table's vtable is sane; returns the table position."""
        vtable = pos - self._unpack("<i", pos)
        vt_size = self._unpack("<H", vtable)
        if vt_size < 4 or vt_size % 2 or vtable + vt_size > len(self.data):
            raise FlatbufferError(f"corrupt vtable at offset {vtable}")
        self.spend(vt_size // 2)
        return pos

    def tables(self, table: int, slot: int) -> list[int]:
        """The reader's table vector, with its cost spent and every table's vtable checked."""
        positions = self.table_vector(table, slot)
        self.spend(len(positions))
        return [self.table(pos) for pos in positions]

    def scalars(self, table: int, slot: int, fmt: str) -> tuple | None:
        """A vector of scalars (struct format char), or None if the field is absent."""
        pos = self.table_field(table, slot)
        if pos is None:
            return None
        length, start = self.vector(pos)
        size = struct.calcsize("<" + fmt)
        if start + size * length > len(self.data):
            raise FlatbufferError("vector runs past the end of the file")
        self.spend(length)
        return struct.unpack_from(f"<{length}{fmt}", self.data, start)

    def byte_length(self, table: int, slot: int) -> int | None:
        pos = self.table_field(table, slot)
        if pos is None:
            return None
        length, _ = self.vector(pos)
        return length

    def has(self, table: int, slot: int) -> bool:
        return self.field_pos(table, slot) is not None

    def check_utf8(self, table: int, slot: int, where: str) -> None:
        """Names are decoded as strict UTF-8 by the interpreter's Python API: refuse any other bytes."""
        pos = self.table_field(table, slot)
        if pos is None:
            return
        length, start = self.vector(pos)
        self.spend(length // 64)
        try:
            self.data[start : start + length].decode("utf-8")
        except UnicodeDecodeError:
            raise FlatbufferError(f"{where} has a name that is not valid UTF-8") from None


def _element_bytes(n_elements: int, bits: int) -> int:
    return (n_elements * bits + 7) // 8


def validate_tflite(data: bytes) -> ModelSummary:
    """Walk the whole model; raise FlatbufferError (one line) on anything unsafe (see module doc)."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise FlatbufferError("not a TFLite model (missing 'TFL3' file identifier)")
    if len(data) > MAX_MODEL_BYTES:
        raise FlatbufferError(f"model file is larger than {MAX_MODEL_BYTES:,} bytes")
    w = _Walker(bytes(data))
    root = w.table(w.deref(0))
    version = w.scalar_field(root, _MODEL_VERSION, "<I")
    if version != SCHEMA_VERSION:
        raise FlatbufferError(f"TFLite schema version {version} is not supported (expected {SCHEMA_VERSION})")
    if w.has(root, _MODEL_EXT_BUFFERS) or w.has(root, _MODEL_EXT_GROUPS):
        raise FlatbufferError("models with external buffers are not supported")

    buffer_sizes = [_buffer_size(w, b) for b in w.tables(root, _MODEL_BUFFERS)]
    opcodes, custom = _operator_codes(w, root)
    subgraphs = w.tables(root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise FlatbufferError("model has no subgraph")
    tensor_counts = []
    summary_io: tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]] = ((), ())
    n_ops = n_tensors = 0
    for g, sg in enumerate(subgraphs):
        infos, constant = _tensors(w, sg, g, buffer_sizes)
        tensor_counts.append(len(infos))
        n_tensors += len(infos)
        ios = []
        for slot, what in ((_SG_INPUTS, "input"), (_SG_OUTPUTS, "output")):
            indices = w.scalars(sg, slot, "i") or ()
            for i in indices:
                if not 0 <= i < len(infos):
                    raise FlatbufferError(f"subgraph {g} {what} tensor index {i} out of range ({len(infos)} tensors)")
            if what == "input" and any(constant[i] for i in indices):
                raise FlatbufferError(f"subgraph {g} input is a constant tensor")
            ios.append(tuple(infos[i] for i in indices))
        if g == 0:
            summary_io = (ios[0], ios[1])
        n_ops += _operators(w, sg, g, len(infos), constant, opcodes)
    _signatures(w, root, tensor_counts)
    for index in w.scalars(root, _MODEL_METADATA_BUFFER, "i") or ():
        if not 0 <= index < len(buffer_sizes):
            raise FlatbufferError(f"metadata buffer index {index} out of range ({len(buffer_sizes)} buffers)")
    for meta in w.tables(root, _MODEL_METADATA):
        index = w.scalar_field(meta, 1, "<I")
        if index >= len(buffer_sizes):
            raise FlatbufferError(f"metadata buffer index {index} out of range ({len(buffer_sizes)} buffers)")
    return ModelSummary(
        inputs=summary_io[0], outputs=summary_io[1], subgraphs=len(subgraphs), operators=n_ops,
        tensors=n_tensors, custom_ops=tuple(sorted(custom)),
    )


def _buffer_size(w: _Walker, buf: int) -> int:
    """Bytes of constant data in a Buffer (0: none), checked to lie inside the file."""
    length = w.byte_length(buf, _B_DATA)
    if length is not None:
        return length
    offset = w.scalar_field(buf, _B_OFFSET, "<Q")
    size = w.scalar_field(buf, _B_SIZE, "<Q")
    if offset > 1 and offset + size > len(w.data):
        raise FlatbufferError(f"buffer at offset {offset} ({size} bytes) runs past the end of the file")
    return size if offset > 1 else 0


def _operator_codes(w: _Walker, root: int) -> tuple[list[int], set[str]]:
    codes, custom = [], set()
    for oc in w.tables(root, _MODEL_OPCODES):
        deprecated = w.scalar_field(oc, _OC_DEPRECATED, "<b")
        builtin = w.scalar_field(oc, _OC_BUILTIN, "<i")
        code = max(deprecated, builtin)
        if not 0 <= code <= MAX_BUILTIN_OP:
            raise FlatbufferError(f"unknown builtin operator code {code}")
        if code in SUBGRAPH_OPS:
            raise FlatbufferError(f"operator {SUBGRAPH_OPS[code]} (control flow / subgraph call) is not allowed in a restoration model")
        if code == 32:  # CUSTOM
            name_pos = w.table_field(oc, 1)
            custom.add(w.string(name_pos)[:64] if name_pos is not None else "")
        codes.append(code)
    return codes, custom


def _tensors(w: _Walker, sg: int, g: int, buffer_sizes: list[int]) -> tuple[list[TensorInfo], list[bool]]:
    infos: list[TensorInfo] = []
    constant: list[bool] = []
    for t, tensor in enumerate(w.tables(sg, _SG_TENSORS)):
        where = f"subgraph {g} tensor {t}"
        shape = w.scalars(tensor, _T_SHAPE, "i") or ()
        if len(shape) > MAX_RANK:
            raise FlatbufferError(f"{where} has rank {len(shape)} (at most {MAX_RANK})")
        if any(d < 0 for d in shape):
            raise FlatbufferError(f"{where} has a negative dimension {list(shape)}")
        signature = w.scalars(tensor, _T_SIGNATURE, "i")
        if signature is not None and (len(signature) != len(shape) or any(d < -1 for d in signature)):
            raise FlatbufferError(f"{where} has an invalid shape signature")
        w.check_utf8(tensor, _T_NAME, where)
        type_code = w.scalar_field(tensor, _T_TYPE, "<b")
        if type_code not in TENSOR_TYPES:
            raise FlatbufferError(f"{where} has unknown type {type_code}")
        dtype, bits = TENSOR_TYPES[type_code]
        if bits is None:
            raise FlatbufferError(f"{where} has type {dtype}, which an image model does not use")
        if w.has(tensor, _T_SPARSITY):
            raise FlatbufferError(f"{where} is sparse; sparse tensors are not supported")
        if w.has(tensor, _T_VARIANTS) or w.has(tensor, _T_EXTERNAL):
            raise FlatbufferError(f"{where} uses variant or external data, which is not supported")
        n = math.prod(shape)
        nbytes = _element_bytes(n, bits)
        if nbytes > MAX_TENSOR_BYTES:
            raise FlatbufferError(f"{where} needs {nbytes:,} bytes (limit {MAX_TENSOR_BYTES:,})")
        buffer = w.scalar_field(tensor, _T_BUFFER, "<I")
        if buffer >= len(buffer_sizes):
            raise FlatbufferError(f"{where} buffer index {buffer} out of range ({len(buffer_sizes)} buffers)")
        size = buffer_sizes[buffer]
        if size and size != nbytes:
            raise FlatbufferError(f"{where} has {size} bytes of data but shape {list(shape)} {dtype} needs {nbytes}")
        scales, zeros = _quantization(w, tensor, where, shape, dtype)
        infos.append(TensorInfo(t, tuple(shape), dtype, scales, zeros))
        constant.append(size > 0)
    return infos, constant


def _quantization(w: _Walker, tensor: int, where: str, shape: tuple, dtype: str) -> tuple[tuple[float, ...], tuple[int, ...]]:
    q_pos = w.table_field(tensor, _T_QUANT)
    if q_pos is None:
        if dtype in QUANTIZED_TYPES:
            raise FlatbufferError(f"{where} is {dtype} but has no quantization parameters")
        return (), ()
    q = w.table(q_pos)
    if w.scalar_field(q, _Q_DETAILS_TYPE, "<B") != 0:
        raise FlatbufferError(f"{where} uses custom quantization details, which are not supported")
    scales = w.scalars(q, _Q_SCALE, "f") or ()
    zeros = w.scalars(q, _Q_ZERO, "q") or ()
    if not scales and not zeros:
        if dtype in QUANTIZED_TYPES:
            raise FlatbufferError(f"{where} is {dtype} but has no quantization parameters")
        return (), ()
    if len(scales) != len(zeros):
        raise FlatbufferError(f"{where} has {len(scales)} quantization scales but {len(zeros)} zero points")
    if not all(math.isfinite(s) and s > 0 for s in scales):
        raise FlatbufferError(f"{where} has a zero, negative or non-finite quantization scale")
    low, high = SCALE_RANGE
    if not all(low <= s <= high for s in scales):
        raise FlatbufferError(f"{where} has a quantization scale outside [{low:g}, {high:g}]")
    if dtype in ZERO_POINT_RANGE:
        zmin, zmax = ZERO_POINT_RANGE[dtype]
        if not all(zmin <= z <= zmax for z in zeros):
            bad = next(z for z in zeros if not zmin <= z <= zmax)
            raise FlatbufferError(f"{where} has zero point {bad} outside the {dtype} range [{zmin}, {zmax}]")
    if len(scales) > 1:
        dim = w.scalar_field(q, _Q_DIM, "<i")
        if not 0 <= dim < len(shape) or shape[dim] != len(scales):
            raise FlatbufferError(f"{where} has {len(scales)} per-channel scales for dimension {dim} of shape {list(shape)}")
    return tuple(scales), tuple(zeros)


def _operators(w: _Walker, sg: int, g: int, n_tensors: int, constant: list[bool], opcodes: list[int]) -> int:
    ops = w.tables(sg, _SG_OPERATORS)
    for k, op in enumerate(ops):
        where = f"subgraph {g} operator {k}"
        index = w.scalar_field(op, _OP_OPCODE, "<I")
        if index >= len(opcodes):
            raise FlatbufferError(f"{where} opcode index {index} out of range ({len(opcodes)} operator codes)")
        for slot, what in ((_OP_INPUTS, "input"), (_OP_OUTPUTS, "output"), (_OP_INTERMEDIATES, "intermediate")):
            for i in w.scalars(op, slot, "i") or ():
                optional_ok = what == "input" and i == -1
                if not optional_ok and not 0 <= i < n_tensors:
                    raise FlatbufferError(f"{where} {what} tensor index {i} out of range ({n_tensors} tensors)")
                if what != "input" and constant[i]:
                    raise FlatbufferError(f"{where} writes into constant tensor {i}")
        w.byte_length(op, _OP_CUSTOM)  # bounds-checked
        offset = w.scalar_field(op, _OP_LARGE_OFFSET, "<Q")
        size = w.scalar_field(op, _OP_LARGE_SIZE, "<Q")
        if offset and offset + size > len(w.data):
            raise FlatbufferError(f"{where} custom options run past the end of the file")
    return len(ops)


def _signatures(w: _Walker, root: int, tensor_counts: list[int]) -> None:
    for s, sig in enumerate(w.tables(root, _MODEL_SIGNATURES)):
        w.check_utf8(sig, _SIG_KEY, f"signature {s}")
        g = w.scalar_field(sig, _SIG_SUBGRAPH, "<I")
        if g >= len(tensor_counts):
            raise FlatbufferError(f"signature {s} names subgraph {g} of {len(tensor_counts)}")
        for slot in (_SIG_INPUTS, _SIG_OUTPUTS):
            for tm in w.tables(sig, slot):
                w.check_utf8(tm, _TM_NAME, f"signature {s} tensor map")
                index = w.scalar_field(tm, _TM_INDEX, "<I")
                if index >= tensor_counts[g]:
                    raise FlatbufferError(f"signature {s} tensor index {index} out of range ({tensor_counts[g]} tensors)")
