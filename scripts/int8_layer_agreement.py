"""Layer-by-layer int8 agreement between ONNX Runtime (QDQ graph) and TFLite, on real tiles.

Where does the output disagreement of two int8 implementations start, and where does it grow?
Every op output of the .tflite file is made a graph output (so XNNPACK materialises it too), every
activation QuantizeLinear of the QDQ graph an ONNX output; tensors are paired by their (scale,
zero point) and size, as the scale audit pairs them. For each TFLite op the table prints the share
of int8 values that are equal, within one step, and the largest difference.

    python scripts/int8_layer_agreement.py models/denoise_qdq.onnx models/denoise_int8.tflite \\
        --images ../shared/datasets/Set14 --count 2 --onnx fused --tflite xnnpack
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_runtime.backends import quantize  # noqa: E402
from export.audit import onnx_activation_qparams  # noqa: E402
from export.verify import parity_tiles  # noqa: E402


@dataclass
class LayerAgreement:
    """Agreement of one TFLite op output with its QDQ twin, over all tiles."""

    op_index: int
    op_name: str
    exact: float
    within_1: float
    max_steps: int


def tflite_with_every_op_output(data: bytes) -> bytes:
    """The same model with every op output listed as a subgraph output."""
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray(data))
    graph = model.subgraphs[0]
    graph.outputs = np.array(sorted({int(o) for op in graph.operators for o in op.outputs}), dtype=np.int32)
    return bytes(fbu.convert_object_to_bytearray(model))


def onnx_with_every_activation_output(model: onnx.ModelProto) -> tuple[bytes, dict[str, tuple[float, int]]]:
    """The QDQ graph with every activation QuantizeLinear output exposed; {output: (scale, zp)}."""
    pairs = onnx_activation_qparams(model)
    exposed = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in pairs:
            exposed[node.output[0]] = pairs[node.input[0]]
            model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.INT8, None))
    return model.SerializeToString(), exposed


def layer_agreement(qdq_path: str, tflite_path: str, tiles: np.ndarray, onnx_mode: str = "fused",
                    tflite_kernels: str = "xnnpack") -> list[LayerAgreement]:
    """Per TFLite op: share of its int8 output equal to / within one step of the QDQ twin."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    onnx_bytes, exposed = onnx_with_every_activation_output(onnx.load(qdq_path))
    options = ort.SessionOptions()
    if onnx_mode == "unfused":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    data = tflite_with_every_op_output(Path(tflite_path).read_bytes())
    resolver = OpResolverType.AUTO if tflite_kernels == "xnnpack" else OpResolverType.BUILTIN_REF
    interp = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    # op names come from an undelegated twin: with XNNPACK the op list is its partitions
    plain = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    producer = {int(o): (i, op["op_name"]) for i, op in enumerate(plain._get_ops_details()) for o in op["outputs"]}
    inp = interp.get_input_details()[0]
    s_in, z_in = inp["quantization"]
    results: dict[int, tuple[str, list[tuple[float, float, int]]]] = {}
    for tile in tiles:
        onnx_out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: tile[None].transpose(0, 3, 1, 2).copy()})))
        interp.set_tensor(inp["index"], quantize(tile[None], s_in, z_in, np.empty(inp["shape"], np.int8)))
        interp.invoke()
        for det in interp.get_output_details():
            scale, zp = det["quantization"]
            if scale == 0 or det["dtype"] != np.int8:
                continue
            ours = interp.get_tensor(det["index"]).astype(np.int32)
            best = None
            for name, (s, z) in exposed.items():
                theirs = onnx_out[name]
                if z != zp or abs(s - scale) > 1e-5 * scale or theirs.size != ours.size:
                    continue
                theirs = theirs.astype(np.int32)
                theirs = (theirs.transpose(0, 2, 3, 1) if theirs.ndim == 4 else theirs).reshape(ours.shape)
                diff = np.abs(theirs - ours)
                row = (float(np.mean(diff == 0)), float(np.mean(diff <= 1)), int(diff.max()))
                if best is None or row[0] > best[0]:
                    best = row
            if best is not None:
                index, op_name = producer[int(det["index"])]
                results.setdefault(index, (op_name, []))[1].append(best)
    return [LayerAgreement(i, name, float(np.mean([r[0] for r in rows])), float(np.mean([r[1] for r in rows])),
                           max(r[2] for r in rows)) for i, (name, rows) in sorted(results.items())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("qdq", help="the QDQ .onnx file")
    p.add_argument("tflite", help="the int8 .tflite converted from it")
    p.add_argument("--images", default=None, help="folder of clean photos (default: dead-leaves tiles)")
    p.add_argument("--count", type=int, default=2, help="tiles (default %(default)s)")
    p.add_argument("--onnx", choices=("fused", "unfused"), default="fused",
                   help="ONNX Runtime with its int8 kernels (fused, the default session) or Q/DQ as written")
    p.add_argument("--tflite", dest="kernels", choices=("xnnpack", "reference"), default="xnnpack",
                   help="TFLite kernels (default %(default)s)")
    args = p.parse_args(argv)
    from edge_runtime.backends import open_backend

    backend = open_backend(args.tflite)
    tiles, _ = parity_tiles(args.images, backend.tile_size, backend.channels, args.count, backend.contract.task)
    rows = layer_agreement(args.qdq, args.tflite, tiles, args.onnx, args.kernels)
    print(f"ONNX Runtime ({args.onnx}) vs TFLite ({args.kernels}), {len(tiles)} tile(s), int8 steps of each tensor")
    print(f"{'op':>4} {'type':<20}{'exact':>9}{'<=1':>9}{'max':>5}")
    for r in rows:
        print(f"{r.op_index:>4} {r.op_name:<20}{r.exact:>9.5f}{r.within_1:>9.5f}{r.max_steps:>5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
