#!/usr/bin/env python3
"""Edge TPU readiness of a .tflite model: its operators against what edgetpu_compiler maps.

    python scripts/edgetpu_readiness.py models/denoise_int8.tflite [--json report.json] [--compile]

Reads the model's flatbuffer with the standard library only (no TensorFlow, no interpreter) and
checks, per Coral's "TensorFlow models on the Edge TPU" requirements (compiler v16):

* every tensor the operators compute is 8-bit quantized (int8 or uint8; int32 bias constants are
  fine); float, int16 or int32 activations stay on the CPU;
* all shapes are static (no -1 in shape_signature) and parameters (weights, biases) are constants;
* no tensor has more than 3 dimensions larger than 1 (only the 3 innermost may be > 1);
* each operator is on the supported list, within its documented limitations (fused activations,
  dilation, batch-dimension reductions/padding, strided-slice strides, ...). HARD_SWISH,
  DEQUANTIZE and LEAKY_RELU, for example, are not on the list;
* the compiler maps one contiguous run of operators from the start of the graph: from the first
  operator it cannot map, everything after runs on the CPU, supported or not.

With --compile, and when `edgetpu_compiler` is on the PATH (Coral's Debian package, x86_64 Linux
only; see docs/board-install.md), the model is also compiled to <stem>_edgetpu.tflite and the
compiler's own log is printed. Without the compiler this report is the whole answer.

Exit code: 0 ready (every operator should map), 1 not ready, 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_runtime.tflite_metadata import TFLITE_IDENTIFIER, FlatbufferError, _Reader  # noqa: E402

# BuiltinOperator codes 0..127 of the TFLite schema (schema.fbs); larger codes are named BUILTIN_<n>.
BUILTIN_NAMES = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR "
    "FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC "
    "LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH "
    "SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD UNIDIRECTIONAL_SEQUENCE_RNN "
    "GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM "
    "STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM "
    "CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN "
    "TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN "
    "FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK REDUCE_MIN FLOOR_DIV "
    "REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE "
    "MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG "
    "QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 SCATTER_ND "
    "SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES"
).split()
TENSOR_TYPES = (
    "FLOAT32 FLOAT16 INT32 UINT8 INT64 STRING BOOL INT16 COMPLEX64 INT8 FLOAT64 COMPLEX128 UINT64 RESOURCE "
    "VARIANT UINT32 UINT16 INT4 BFLOAT16"
).split()
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
EIGHT_BIT = ("INT8", "UINT8")

#: Operators edgetpu_compiler (v16) can map, with Coral's documented limitations (checked below
#: where the model says enough to check them).
EDGETPU_OPS: dict[str, str] = {
    "ADD": "",
    "AVERAGE_POOL_2D": "No fused activation function.",
    "CONCATENATION": "No fused activation function; a constant input must be all zeros and the only other input.",
    "CONV_2D": "Must use the same dilation in x and y.",
    "DEPTHWISE_CONV_2D": "Must use the same dilation in x and y.",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "Only the default weights format; output tensor one-dimensional.",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "Unidirectional LSTM only.",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "Unidirectional LSTM only.",
    "MAXIMUM": "",
    "MAX_POOL_2D": "No fused activation function.",
    "MEAN": "No reduction in the batch dimension; a z (channel) reduction needs a multiple of 4 channels.",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "No packing in the batch dimension.",
    "PAD": "No padding in the batch dimension.",
    "PRELU": "Alpha must be 1-dimensional.",
    "QUANTIZE": "8-bit to 8-bit requantization; a float input is quantized on the CPU.",
    "REDUCE_MAX": "Cannot operate on the batch dimension.",
    "REDUCE_MIN": "Cannot operate on the batch dimension.",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "Certain reshapes might not be mapped for large tensor sizes.",
    "RESIZE_BILINEAR": "3-D input/output; depending on sizes it may stay on the CPU to avoid precision loss.",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; depending on sizes it may stay on the CPU to avoid precision loss.",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input of at most 16,000 elements.",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "No splitting in the batch dimension.",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "All strides 1, no ellipsis or new-axis mask.",
    "SUB": "",
    "SUM": "Cannot operate on the batch dimension.",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}
#: Well-known operators that are NOT on the list, with what to use instead.
NOT_SUPPORTED_HINTS = {
    "HARD_SWISH": "not on the Edge TPU list: use ReLU/ReLU6 (the 'minimalistic' preset) instead of hard-swish",
    "DEQUANTIZE": "not on the Edge TPU list: keep the model fully integer (int8/uint8 in and out)",
    "LEAKY_RELU": "not on the Edge TPU list: use ReLU or PReLU",
    "DEPTH_TO_SPACE": "not on the Edge TPU list: use RESIZE_NEAREST_NEIGHBOR (python -m export --upsample resize)",
    "MIRROR_PAD": "not on the Edge TPU list: use zero PAD",
    "PADV2": "not on the Edge TPU list: use PAD",
    "DIV": "not on the Edge TPU list: multiply by a constant instead",
    "GELU": "not on the Edge TPU list",
}
EDGETPU_CUSTOM = "edgetpu-custom-op"
#: Edge TPU on-chip memory for caching parameters (bytes); larger models stream weights each inference.
ONCHIP_BYTES = 8 * 1024 * 1024

# Schema field slots.
_M_OPCODES, _M_SUBGRAPHS, _M_BUFFERS = 1, 2, 4
_OC_DEPRECATED, _OC_CUSTOM, _OC_VERSION, _OC_BUILTIN = 0, 1, 2, 3
_SG_TENSORS, _SG_INPUTS, _SG_OUTPUTS, _SG_OPERATORS = 0, 1, 2, 3
_T_SHAPE, _T_TYPE, _T_BUFFER, _T_NAME, _T_QUANT, _T_SIGNATURE = 0, 1, 2, 3, 4, 7
_Q_SCALE = 2
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS = 0, 1, 2, 4
_B_DATA, _B_OFFSET, _B_SIZE = 0, 1, 2
# Builtin options: (slot of fused_activation_function, dilation w slot, dilation h slot)
_FUSED_SLOT = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "AVERAGE_POOL_2D": 5, "MAX_POOL_2D": 5, "CONCATENATION": 1,
               "ADD": 0, "MUL": 0, "SUB": 0, "FULLY_CONNECTED": 0}
_DILATION_SLOTS = {"CONV_2D": (4, 5), "DEPTHWISE_CONV_2D": (5, 6)}
_STRIDED_SLICE_MASKS = (2, 3)  # ellipsis_mask, new_axis_mask


@dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: list[int]
    signature: list[int]
    constant: bool
    nbytes: int
    quantized: bool


@dataclass
class OpReport:
    index: int
    op: str
    status: str  # edgetpu | cpu
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    activation: str = "NONE"


@dataclass
class Report:
    model: str
    subgraphs: int
    operators: list[OpReport]
    op_counts: dict[str, int]
    problems: list[str]
    notes: list[str]
    parameter_bytes: int
    mapped: int
    first_cpu_op: int | None
    compiled: bool

    @property
    def ready(self) -> bool:
        return not self.problems and self.first_cpu_op is None


class _Model:
    """Just enough of the TFLite flatbuffer for the checks, bounds-checked by tflite_metadata's reader."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
            raise FlatbufferError("not a TFLite model (missing 'TFL3' file identifier)")
        self.r = _Reader(data)
        self.root = self.r.deref(0)
        self.buffers = self.r.table_vector(self.root, _M_BUFFERS)
        self.opcodes = [self._opcode(t) for t in self.r.table_vector(self.root, _M_OPCODES)]
        self.subgraphs = self.r.table_vector(self.root, _M_SUBGRAPHS)

    def _opcode(self, table: int) -> str:
        r = self.r
        code = max(r.scalar_field(table, _OC_DEPRECATED, "<b"), r.scalar_field(table, _OC_BUILTIN, "<i"))
        if code == 32:  # CUSTOM
            pos = r.table_field(table, _OC_CUSTOM)
            return f"CUSTOM:{r.string(pos)}" if pos is not None else "CUSTOM"
        return BUILTIN_NAMES[code] if 0 <= code < len(BUILTIN_NAMES) else f"BUILTIN_{code}"

    def ints(self, table: int, slot: int, fmt: str = "<i") -> list[int]:
        pos = self.r.table_field(table, slot)
        if pos is None:
            return []
        n, start = self.r.vector(pos)
        size = struct.calcsize(fmt)
        if start + n * size > len(self.r.data):
            raise FlatbufferError("vector runs past the end of the file")
        return [struct.unpack_from(fmt, self.r.data, start + i * size)[0] for i in range(n)]

    def buffer_bytes(self, index: int) -> bytes:
        if not 0 <= index < len(self.buffers):
            return b""
        buf = self.buffers[index]
        pos = self.r.table_field(buf, _B_DATA)
        if pos is not None:
            return self.r.byte_vector(pos)
        offset = self.r.scalar_field(buf, _B_OFFSET, "<Q")
        size = self.r.scalar_field(buf, _B_SIZE, "<Q")
        return self.r.data[offset : offset + size] if offset > 1 and size else b""

    def tensors(self, subgraph: int) -> list[TensorInfo]:
        out = []
        for i, t in enumerate(self.r.table_vector(subgraph, _SG_TENSORS)):
            name_pos = self.r.table_field(t, _T_NAME)
            dtype_code = self.r.scalar_field(t, _T_TYPE, "<b")
            dtype = TENSOR_TYPES[dtype_code] if 0 <= dtype_code < len(TENSOR_TYPES) else f"TYPE_{dtype_code}"
            shape = self.ints(t, _T_SHAPE)
            data = self.buffer_bytes(self.r.scalar_field(t, _T_BUFFER, "<I"))
            quant = self.r.table_field(t, _T_QUANT)
            scales = self.ints(quant, _Q_SCALE, "<f") if quant is not None else []
            out.append(TensorInfo(
                index=i, name=self.r.string(name_pos) if name_pos is not None else f"t{i}", dtype=dtype,
                shape=shape, signature=self.ints(t, _T_SIGNATURE) or list(shape), constant=bool(data),
                nbytes=len(data), quantized=bool(scales),
            ))
        return out

    def constant_ints(self, subgraph: int, tensor: int) -> list[int] | None:
        """Values of a constant int32 tensor (axes, paddings, strides), else None."""
        t = self.r.table_vector(subgraph, _SG_TENSORS)[tensor]
        if self.r.scalar_field(t, _T_TYPE, "<b") != 2:
            return None
        data = self.buffer_bytes(self.r.scalar_field(t, _T_BUFFER, "<I"))
        if not data:
            return None
        return list(struct.unpack(f"<{len(data) // 4}i", data[: len(data) // 4 * 4]))


def analyze(path: Path) -> Report:
    """The readiness report of one .tflite file (FlatbufferError/OSError if it cannot be read)."""
    data = path.read_bytes()
    m = _Model(data)
    problems: list[str] = []
    notes: list[str] = []
    if len(m.subgraphs) != 1:
        problems.append(f"{len(m.subgraphs)} subgraphs: edgetpu_compiler maps only a model's first subgraph")
    sg = m.subgraphs[0]
    tensors = m.tensors(sg)
    graph_inputs = set(m.ints(sg, _SG_INPUTS))
    graph_outputs = set(m.ints(sg, _SG_OUTPUTS))
    for i in sorted(graph_inputs | graph_outputs):
        t = tensors[i]
        kind = "input" if i in graph_inputs else "output"
        if t.dtype not in EIGHT_BIT:
            problems.append(f"model {kind} '{t.name}' is {t.dtype}: the Edge TPU needs int8/uint8 input and output")
    dynamic = [t for t in tensors if any(s < 0 for s in t.signature)]
    if dynamic:
        problems.append(f"{len(dynamic)} tensor(s) with dynamic shapes (e.g. '{dynamic[0].name}' {dynamic[0].signature}): "
                        "the Edge TPU needs static shapes; export with a fixed tile size")

    ops: list[OpReport] = []
    for index, op in enumerate(m.r.table_vector(sg, _SG_OPERATORS)):
        opcode = m.r.scalar_field(op, _OP_OPCODE, "<I")
        name = m.opcodes[opcode] if opcode < len(m.opcodes) else f"OPCODE_{opcode}"
        rep = OpReport(index=index, op=name, status="edgetpu", inputs=[i for i in m.ints(op, _OP_INPUTS) if i >= 0],
                       outputs=m.ints(op, _OP_OUTPUTS))
        options = m.r.table_field(op, _OP_OPTIONS)
        _check_op(m, sg, tensors, rep, options)
        rep.reasons = list(dict.fromkeys(rep.reasons))  # each reason once, in order
        rep.notes = list(dict.fromkeys(rep.notes))
        if rep.reasons:
            rep.status = "cpu"
        ops.append(rep)

    counts: dict[str, int] = {}
    for rep in ops:
        counts[rep.op] = counts.get(rep.op, 0) + 1
    compiled = any(rep.op == f"CUSTOM:{EDGETPU_CUSTOM}" for rep in ops)
    if compiled:
        notes.append("already compiled by edgetpu_compiler: it contains an edgetpu-custom-op")
    first_cpu = next((rep.index for rep in ops if rep.status == "cpu"), None)
    if first_cpu is not None:
        later = [rep for rep in ops[first_cpu + 1 :] if rep.status == "edgetpu"]
        for rep in later:
            rep.status = "cpu"
            rep.notes.append(f"after the first unmappable operator (#{first_cpu}): the compiler maps one run from the start")
    parameter_bytes = sum(t.nbytes for t in tensors if t.constant)
    if parameter_bytes > ONCHIP_BYTES * 3 // 4:
        notes.append(f"{parameter_bytes / 2**20:.1f} MiB of parameters: close to or over the ~8 MiB on-chip cache, "
                     "so weights may be streamed from the host each inference (slower over USB)")
    io_types = sorted({tensors[i].dtype for i in graph_inputs | graph_outputs})
    if io_types == ["INT8"]:
        notes.append("int8 input/output: accepted by edgetpu_compiler 16; uint8 I/O (`python -m export --io uint8`) "
                     "suits older Coral tools (pycoral helpers assume uint8)")
    mapped = sum(rep.status == "edgetpu" for rep in ops)
    return Report(model=str(path), subgraphs=len(m.subgraphs), operators=ops, op_counts=counts, problems=problems,
                  notes=notes, parameter_bytes=parameter_bytes, mapped=mapped, first_cpu_op=first_cpu, compiled=compiled)


def _check_op(m: _Model, sg: int, tensors: list[TensorInfo], rep: OpReport, options: int | None) -> None:
    name = rep.op
    if name.startswith("CUSTOM:"):
        if name != f"CUSTOM:{EDGETPU_CUSTOM}":
            rep.reasons.append("custom operator")
        return
    if name not in EDGETPU_OPS:
        rep.reasons.append(NOT_SUPPORTED_HINTS.get(name, "not on the Edge TPU supported-operations list"))
        return
    # Tensor types: computed tensors must be 8-bit; constant parameters may be int32 (bias) or 8-bit.
    for i in rep.inputs + rep.outputs:
        t = tensors[i]
        if t.constant:
            if t.dtype not in EIGHT_BIT + ("INT32",):
                rep.reasons.append(f"{t.dtype} constants")
            elif t.dtype in EIGHT_BIT and not t.quantized and name not in ("RESHAPE",):
                rep.notes.append(f"constant '{t.name}' has no quantization parameters")
            continue
        if t.dtype not in EIGHT_BIT:
            if name == "QUANTIZE" and i in rep.inputs and t.dtype == "FLOAT32":
                rep.reasons.append("quantizes a float input (runs on the CPU)")
            else:
                rep.reasons.append(f"{t.dtype} tensors (not int8/uint8)")
        big = [s for s in t.shape[:-3] if s > 1]
        if big:
            rep.reasons.append(f"tensor '{t.name}' {t.shape} has more than 3 dimensions larger than 1")
    # Parameters must be compile-time constants.
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        params = rep.inputs[1:] if name != "TRANSPOSE_CONV" else rep.inputs[:2]
        for i in params:
            if not tensors[i].constant:
                rep.reasons.append(f"parameter '{tensors[i].name}' is not a constant")
    _check_axes(m, sg, tensors, rep)
    if options is None:
        return
    if name in _FUSED_SLOT:
        act = m.r.scalar_field(options, _FUSED_SLOT[name], "<b")
        rep.activation = ACTIVATIONS[act] if 0 <= act < len(ACTIVATIONS) else str(act)
        if rep.activation != "NONE" and name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
            rep.reasons.append(f"fused {rep.activation} activation on {name}")
        if rep.activation in ("TANH", "SIGN_BIT"):
            rep.reasons.append(f"fused {rep.activation} activation")
    if name in _DILATION_SLOTS:
        dw = m.r.scalar_field(options, _DILATION_SLOTS[name][0], "<i", 1)
        dh = m.r.scalar_field(options, _DILATION_SLOTS[name][1], "<i", 1)
        if dw != dh:
            rep.reasons.append(f"different dilation in x and y ({dw} vs {dh})")
    if name == "STRIDED_SLICE":
        if any(m.r.scalar_field(options, slot, "<i") for slot in _STRIDED_SLICE_MASKS):
            rep.reasons.append("ellipsis or new-axis mask")
        strides = m.constant_ints(sg, rep.inputs[3]) if len(rep.inputs) > 3 else None
        if strides is None or any(s != 1 for s in strides):
            rep.reasons.append(f"strides {strides} are not all 1")


def _check_axes(m: _Model, sg: int, tensors: list[TensorInfo], rep: OpReport) -> None:
    """Batch-dimension limits of reductions, PAD and SPLIT, from their constant axis/padding inputs."""
    name = rep.op
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(rep.inputs) > 1:
        rank = len(tensors[rep.inputs[0]].shape)
        axes = m.constant_ints(sg, rep.inputs[1])
        if axes is None:
            rep.reasons.append("reduction axes are not a constant")
        elif any(a % rank == 0 for a in axes) and tensors[rep.inputs[0]].shape[0] > 1:
            rep.reasons.append(f"reduces over the batch dimension (axes {axes})")
        elif name == "MEAN" and any(a % rank == rank - 1 for a in axes) and tensors[rep.inputs[0]].shape[-1] % 4:
            rep.reasons.append(f"channel reduction over {tensors[rep.inputs[0]].shape[-1]} channels (needs a multiple of 4)")
    if name == "PAD" and len(rep.inputs) > 1:
        pads = m.constant_ints(sg, rep.inputs[1])
        if pads is None:
            rep.reasons.append("paddings are not a constant")
        elif pads[:2] != [0, 0]:
            rep.reasons.append(f"pads the batch dimension ({pads[:2]})")
        elif len(pads) == 8 and pads[6:8] != [0, 0]:
            rep.notes.append("pads the channel dimension (older compilers map x/y padding only)")
    if name == "SPLIT" and rep.inputs:
        axis = m.constant_ints(sg, rep.inputs[0])
        if axis is not None and axis and axis[0] == 0:
            rep.reasons.append("splits the batch dimension")
    if name in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"):
        rep.notes.append("the compiler may keep some resize sizes on the CPU (check its log)")


# ------------------------------------------------------------------------------------------- output


def format_report(rep: Report, verbose: bool = False) -> str:
    lines = [f"Edge TPU readiness: {rep.model}"]
    total = len(rep.operators)
    lines.append(f"  operators: {total} in {rep.subgraphs} subgraph(s); parameters {rep.parameter_bytes / 1024:.1f} KiB")
    lines.append(f"  {'operator':<28} {'count':>5}  edge tpu")
    for name, count in sorted(rep.op_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        reps = [o for o in rep.operators if o.op == name]
        bad = sorted({r for o in reps for r in o.reasons})
        verdict = "yes" if not bad else "NO: " + "; ".join(bad)
        acts = sorted({o.activation for o in reps if o.activation != "NONE"})
        label = name + (f" (+{'/'.join(acts)})" if acts else "")
        lines.append(f"  {label:<28} {count:>5}  {verdict}")
    for problem in rep.problems:
        lines.append(f"  problem: {problem}")
    if rep.first_cpu_op is not None:
        first = rep.operators[rep.first_cpu_op]
        lines.append(f"  first operator the compiler cannot map: #{first.index} {first.op} ({'; '.join(first.reasons)}); "
                     f"operators #{first.index}..#{total - 1} would run on the CPU")
    for note in rep.notes:
        lines.append(f"  note: {note}")
    op_notes = sorted({n for o in rep.operators for n in o.notes if not n.startswith("after the first")})
    for note in op_notes:
        lines.append(f"  note: {note}")
    if verbose:
        for o in rep.operators:
            extra = "; ".join(o.reasons + o.notes)
            lines.append(f"    #{o.index:<3} {o.op:<24} {o.status:<8} {extra}")
    verdict = "READY" if rep.ready else "NOT READY"
    lines.append(f"  result: {verdict}: {rep.mapped} of {total} operators would map to the Edge TPU"
                 + ("" if rep.ready else " (see the problems above)"))
    return "\n".join(lines)


def compile_model(path: Path, out_dir: Path) -> tuple[int, str]:
    """Run edgetpu_compiler if it is installed; (exit code, its output)."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return -1, ("edgetpu_compiler not found: it comes from Coral's apt repository (package edgetpu-compiler, "
                    "x86_64 Debian/Ubuntu only); see docs/board-install.md. The report above is the readiness check.")
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([exe, "-s", "-o", str(out_dir), str(path)], capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default="models/denoise_int8.tflite", help="a .tflite model (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--compile", action="store_true", help="also run edgetpu_compiler when it is installed")
    p.add_argument("--out", default=None, help="folder for the compiled model (default: beside the model)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every operator")
    args = p.parse_args(argv)
    path = Path(args.model)
    try:
        rep = analyze(path)
    except (OSError, FlatbufferError, IndexError, struct.error) as exc:
        print(f"edgetpu_readiness: error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    print(format_report(rep, args.verbose))
    if args.json:
        doc = asdict(rep)
        doc["ready"] = rep.ready
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if args.compile:
        code, log = compile_model(path, Path(args.out) if args.out else path.parent)
        print(("edgetpu_compiler:\n" if code >= 0 else "") + log)
        if code > 0:
            return 1
    return 0 if rep.ready else 1


if __name__ == "__main__":
    sys.exit(main())
