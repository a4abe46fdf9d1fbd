"""Find every external-data reference in an ONNX file, with the standard library only.

An ONNX tensor can keep its bytes in another file (`external_data` key "location", relative to
the model's folder). A hostile model can point that at any path ("../../home/user/.ssh/id_rsa",
"/etc/shadow") and get its bytes loaded as weights. `check_external_data()` walks the protobuf
(ModelProto -> graph / functions / training_info -> nodes -> attributes -> tensors and nested
graphs, sparse tensors included) with bounds checks, a depth limit and no recursion, and
refuses any location that is absolute, has a '..' part, a drive or NUL, or resolves (symbolic
links followed) outside the model's folder.

Only the fields on the path to a tensor are decoded; everything else is skipped by wire type.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


class UnsafeExternalData(OnnxFormatError):
    """An external-data location points outside the model's folder."""


MAX_DEPTH = 64
# message kind -> {field number: child message kind}
_MODEL, _GRAPH, _NODE, _ATTR, _TENSOR, _SPARSE, _FUNCTION, _TRAINING, _ENTRY = range(9)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION, 20: _TRAINING},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _FUNCTION: {7: _NODE, 11: _ATTR},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTR},
    _ATTR: {5: _TENSOR, 6: _GRAPH, 22: _SPARSE, 10: _TENSOR, 11: _GRAPH, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},
    _ENTRY: {},
}
_TENSOR_NAME, _TENSOR_DATA_LOCATION, _EXTERNAL = 8, 14, 1


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise OnnxFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise OnnxFormatError("varint too long")


def _fields(data: bytes, start: int, end: int):
    """Yield (field number, wire type, value or (start, end) for length-delimited) of one message."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos, end)
            yield number, wire, value
        elif wire == 1:
            pos += 8
            if pos > end:
                raise OnnxFormatError("truncated fixed64")
        elif wire == 5:
            pos += 4
            if pos > end:
                raise OnnxFormatError("truncated fixed32")
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise OnnxFormatError("length-delimited field runs past its message")
            yield number, wire, (pos, pos + length)
            pos += length
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")


def external_locations(data: bytes) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor stored outside the file; OnnxFormatError if malformed."""
    found: list[tuple[str, str]] = []
    stack = [(_MODEL, 0, len(data), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise OnnxFormatError(f"nesting deeper than {MAX_DEPTH} levels")
        children = _CHILDREN[kind]
        name, location, external = "", None, False
        for number, wire, value in _fields(data, start, end):
            if kind == _TENSOR:
                if number == _TENSOR_NAME and wire == 2:
                    name = data[value[0] : value[1]].decode("utf-8", "replace")
                elif number == _TENSOR_DATA_LOCATION and wire == 0:
                    external = value == _EXTERNAL
                elif number == 13 and wire == 2:
                    key, val = _entry(data, *value)
                    if key == "location":
                        location = val
                continue
            if wire == 2 and number in children:
                stack.append((children[number], value[0], value[1], depth + 1))
        if kind == _TENSOR and (external or location is not None):
            found.append((name, location if location is not None else ""))
    return found


#: The ONNX operators the runtime runs: what export/ produces (export/onnx_to_tf.py's handlers and
#: the float / QDQ graphs of models/), all in the default domain. A model is a program: anything
#: else (Loop, If, Scan, custom domains, model-local functions) could run unbounded or unknown
#: code, so it is refused before onnxruntime sees the bytes.
ALLOWED_OPERATORS = frozenset({
    "Add", "Clip", "Concat", "Constant", "Conv", "DequantizeLinear", "Div", "GlobalAveragePool", "HardSwish",
    "Identity", "Mul", "QuantizeLinear", "ReduceMean", "Relu", "Resize", "Sub",
})
_GRAPH_NODE, _NODE_OP_TYPE, _NODE_DOMAIN, _MODEL_FUNCTIONS = 1, 4, 7, 25


def check_operators(data: bytes) -> set[str]:
    """Refuse (OnnxFormatError) a model whose graph uses an operator outside ALLOWED_OPERATORS.

    Walks the main graph's nodes only: a node carrying a subgraph is itself not allowed, and
    model-local functions are refused outright. Returns the operators used.
    """
    used: set[str] = set()
    graph = None
    for number, wire, value in _fields(data, 0, len(data)):
        if number == _MODEL_FUNCTIONS and wire == 2:
            raise OnnxFormatError("model-local functions are not allowed")
        if number == 7 and wire == 2:
            graph = value
    if graph is None:
        raise OnnxFormatError("model has no graph")
    for number, wire, value in _fields(data, *graph):
        if number != _GRAPH_NODE or wire != 2:
            continue
        op, domain = "", ""
        for n, w, v in _fields(data, *value):
            if w == 2 and n in (_NODE_OP_TYPE, _NODE_DOMAIN):
                text = data[v[0] : v[1]].decode("utf-8", "replace")
                op, domain = (text, domain) if n == _NODE_OP_TYPE else (op, text)
        if domain not in ("", "ai.onnx") or op not in ALLOWED_OPERATORS:
            where = f" in domain {domain[:40]!r}" if domain not in ("", "ai.onnx") else ""
            raise OnnxFormatError(f"operator {op[:40]!r}{where} is not allowed (the runtime runs only the "
                                  "operators the exporter produces)")
        used.add(op)
    return used


def _entry(data: bytes, start: int, end: int) -> tuple[str, str]:
    key = val = ""
    for number, wire, value in _fields(data, start, end):
        if wire == 2 and number in (1, 2):
            text = data[value[0] : value[1]].decode("utf-8", "replace")
            key, val = (text, val) if number == 1 else (key, text)
    return key, val


def unsafe_location(location: str, folder: Path) -> str | None:
    """Why an external-data location must be refused for a model in `folder`, or None if it is safe."""
    if not location:
        return "an empty location"
    if "\x00" in location:
        return "a NUL byte in the location"
    for pure in (PurePosixPath(location), PureWindowsPath(location)):
        if pure.is_absolute() or pure.drive or pure.root:
            return "an absolute path"
        if ".." in pure.parts:
            return "a '..' component"
    base = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, target]) != base:
        return "a path that resolves outside the model's folder"
    return None


def check_external_data(data: bytes, folder: Path) -> list[str]:
    """Refuse (UnsafeExternalData) unsafe external-data locations; returns the safe ones.

    Raises OnnxFormatError if the bytes are not a well-formed protobuf.
    """
    locations = []
    for name, location in external_locations(data):
        why = unsafe_location(location, folder)
        if why:
            raise UnsafeExternalData(
                f"tensor {name[:60]!r} keeps its data in {location[:120]!r}: {why}; "
                "external data must stay inside the model's folder"
            )
        locations.append(location)
    return locations
