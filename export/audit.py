"""Scale audit: every int8 activation tensor of a TFLite model against the QDQ pairs of its ONNX graph.

Tensor names do not survive conversion, so tensors are matched by their quantization parameters:
each TFLite op output must carry the (scale, zero point) of some activation QuantizeLinear in the
QDQ graph. A TFLite tensor whose parameters appear nowhere in the ONNX graph was re-calibrated or
invented by the converter; that is a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass
class AuditReport:
    """Outcome of a scale audit."""

    tflite_activations: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    onnx_pairs: int = 0
    unused_onnx_pairs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        line = (f"scale audit: {self.matched}/{self.tflite_activations} TFLite activation tensors carry a QDQ scale "
                f"from the ONNX graph ({self.onnx_pairs} activation QDQ pairs)")
        if self.mismatches:
            line += "\n  mismatches:\n    " + "\n    ".join(self.mismatches[:20])
        if self.unused_onnx_pairs:
            line += f"\n  ONNX pairs with no TFLite tensor (fused away): {len(self.unused_onnx_pairs)}"
        return line


def onnx_activation_qparams(model: onnx.ModelProto) -> dict[str, tuple[float, int]]:
    """{tensor name: (scale, zero point)} for every per-tensor QuantizeLinear on an activation."""
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    pairs = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in consts:
            scale = np.asarray(consts[node.input[1]])
            zp = np.asarray(consts[node.input[2]]) if len(node.input) > 2 else np.zeros(())
            if scale.ndim == 0:
                pairs[node.input[0]] = (float(scale), int(zp))
    return pairs


def tflite_activation_qparams(data: bytes) -> dict[str, tuple[float, int]]:
    """{tensor name: (scale, zero point)} for every quantized op output of a TFLite model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    outputs = {i for op in interp._get_ops_details() for i in op["outputs"]}
    result = {}
    for d in interp.get_tensor_details():
        q = d["quantization_parameters"]
        if d["index"] in outputs and d["dtype"] in (np.int8, np.uint8) and len(q["scales"]) == 1:
            zp = int(q["zero_points"][0]) - (128 if d["dtype"] == np.uint8 else 0)  # compare on the int8 grid
            result[d["name"]] = (float(q["scales"][0]), zp)
    return result


def audit_scales(qdq_model: onnx.ModelProto, tflite_model: bytes, rtol: float = 1e-5) -> AuditReport:
    """Match every TFLite activation tensor's scale/zero point to a QDQ pair of the ONNX graph."""
    onnx_q = onnx_activation_qparams(qdq_model)
    report = AuditReport(onnx_pairs=len(onnx_q))
    used: set[str] = set()
    for name, (scale, zp) in tflite_activation_qparams(tflite_model).items():
        report.tflite_activations += 1
        hits = [k for k, (s, z) in onnx_q.items() if z == zp and abs(s - scale) <= rtol * s]
        if hits:
            report.matched += 1
            used.update(hits)
        else:
            report.mismatches.append(f"{name}: scale {scale:.6g}, zero point {zp}")
    report.unused_onnx_pairs = sorted(set(onnx_q) - used)
    return report
