"""Rewrites of converted TFLite flatbuffers that the converter will not do itself.

TFLiteConverter pattern-matches x * relu6(x + 3) / 6 back into HARD_SWISH even when every
intermediate tensor carries a fake-quant range. XNNPACK has no int8 HARD_SWISH, so each one ran
on TFLite's reference kernel and split the graph (about 90% of the int8 model's time). Here each
int8 HARD_SWISH is written out again as the ops the QAT graph actually quantized:

    a = ADD(x, 3), fused RELU6     scale/zero point RELU6_QPARAMS
    g = MUL(a, 1/6)                scale/zero point GATE_QPARAMS
    y = MUL(x, g)                  the HARD_SWISH output tensor, unchanged

so the tensors and scales are exactly those of the QDQ graph (the scale audit checks them).
"""

from __future__ import annotations

import numpy as np

if __package__ == "export":  # a checkout: train/ is a top-level package beside export/
    from train.quant import GATE_QPARAMS, RELU6_QPARAMS
else:  # the installed wheel: edge_restore.export beside edge_restore.train
    from ..train.quant import GATE_QPARAMS, RELU6_QPARAMS


def split_hard_swish(data: bytes) -> tuple[bytes, int]:
    """Replace every int8 HARD_SWISH by ADD+RELU6, MUL, MUL; returns (model bytes, ops rewritten)."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.python.schema_util import get_builtin_code_from_operator_code
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray(data))
    graph = model.subgraphs[0]

    def opcode(builtin: int) -> int:
        for i, code in enumerate(model.operatorCodes):
            if get_builtin_code_from_operator_code(code) == builtin:
                code.version = max(code.version, 2)  # int8 kernels
                return i
        code = fb.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def tensor(name: str, shape: list[int], qparams: tuple[float, int], const: int | None = None) -> int:
        quant = fb.QuantizationParametersT()
        quant.scale, quant.zeroPoint = [float(qparams[0])], [int(qparams[1])]
        t = fb.TensorT()
        t.name, t.shape, t.type, t.quantization = name.encode(), list(shape), fb.TensorType.INT8, quant
        buf = fb.BufferT()
        if const is not None:
            buf.data = np.frombuffer(np.int8(const).tobytes(), np.uint8).copy()
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def operator(code: int, inputs: list[int], outputs: list[int], relu6: bool = False) -> fb.OperatorT:
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
        act = fb.ActivationFunctionType.RELU6 if relu6 else fb.ActivationFunctionType.NONE
        if code == add:
            op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.AddOptions, fb.AddOptionsT()
        else:
            op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.MulOptions, fb.MulOptionsT()
        op.builtinOptions.fusedActivationFunction = act
        return op

    add, mul = opcode(fb.BuiltinOperator.ADD), opcode(fb.BuiltinOperator.MUL)
    ops, count = [], 0
    for op in graph.operators:
        x = op.inputs[0] if len(op.inputs) else -1
        is_hard_swish = get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]) == fb.BuiltinOperator.HARD_SWISH
        if not is_hard_swish or graph.tensors[x].type != fb.TensorType.INT8:
            ops.append(op)
            continue
        count += 1
        shape = list(graph.tensors[x].shape)
        three = tensor(f"hard_swish_{count}/three", [1], (3.0 / 127, 0), 127)  # 3 and 1/6 exactly, as 127 * scale
        sixth = tensor(f"hard_swish_{count}/sixth", [1], (1.0 / 6.0 / 127, 0), 127)
        relu6 = tensor(f"hard_swish_{count}/relu6", shape, RELU6_QPARAMS)
        gate = tensor(f"hard_swish_{count}/gate", shape, GATE_QPARAMS)
        ops += [operator(add, [x, three], [relu6], relu6=True), operator(mul, [relu6, sixth], [gate]),
                operator(mul, [x, gate], list(op.outputs))]
    graph.operators = ops
    return bytes(fbu.convert_object_to_bytearray(model)), count
