"""Build the tiny model fixtures the runtime tests use, into tests/data/.

    .venv/bin/python tests/make_fixtures.py          # rebuild everything

The files are committed, so the runtime tests need neither TensorFlow nor onnx: only this builder
imports them (inside functions). Every model computes the same function,

    y = x + conv3x3(x)        (zero "same" padding, small random weights, receptive field 3 px)

so the float, int8 and uint8 TFLite models, and the NCHW ONNX models, are interchangeable in tests:

    float32.tflite            float32 I/O, 1x32x32x3, contract tile 32 / multiple 4 / overlap 4
    int8.tflite               fully int8 (representative dataset), int8 I/O
    uint8.tflite              fully int8 inside, uint8 I/O
    wrong_shape.tflite        input 1x30x30x3 but contract tile_size 32
    no_contract.tflite        float32 model with no contract metadata
    float_dynamic.onnx        NCHW float, dynamic H/W (the "whole-image" reference)
    float_static.onnx         NCHW float, static 1x3x32x32
    weights.npz               the conv kernel (HWIO) and bias, for numpy references
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
TILE = 32
SEED = 1234


def weights() -> tuple[np.ndarray, np.ndarray]:
    """Kernel (3, 3, 3, 3) HWIO and bias (3,): small, so y stays close to x."""
    rng = np.random.default_rng(SEED)
    kernel = rng.normal(0.0, 0.05, size=(3, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0.0, 0.01, size=(3,)).astype(np.float32)
    return kernel, bias


def contract(quantization: str):
    from edge_runtime.contract import ModelContract

    return ModelContract(
        task="denoise", tile_size=TILE, size_multiple=4, overlap=4, quantization=quantization,
        model_name=f"fixture-{quantization}",
    )


def _keras_model(side: int):
    import tensorflow as tf

    kernel, bias = weights()
    inp = tf.keras.Input(shape=(side, side, 3), batch_size=1, dtype=tf.float32)
    conv = tf.keras.layers.Conv2D(3, 3, padding="same")
    out = tf.keras.layers.Add()([inp, conv(inp)])
    model = tf.keras.Model(inp, out)
    conv.set_weights([kernel, bias])
    return model


def _convert(model, io_type=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if io_type is not None:
        rng = np.random.default_rng(SEED + 1)

        def representative():
            for _ in range(32):
                yield [rng.random((1, *model.input.shape[1:]), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def _onnx_model(static: bool):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kernel, bias = weights()
    w = numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), "w")  # HWIO -> OIHW
    b = numpy_helper.from_array(bias, "b")
    shape = [1, 3, TILE, TILE] if static else [1, 3, "height", "width"]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["input", "conv"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "fixture", [x], [y], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build(out: Path = DATA) -> list[Path]:
    """Write every fixture into `out`; returns the paths written."""
    import tensorflow as tf

    from export.metadata import stamp_onnx, stamp_tflite

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = out / name
        path.write_bytes(data)
        written.append(path)

    model = _keras_model(TILE)
    float_bytes = _convert(model)
    write("float32.tflite", stamp_tflite(float_bytes, contract("float")))
    write("no_contract.tflite", float_bytes)
    write("int8.tflite", stamp_tflite(_convert(model, tf.int8), contract("int8-qat")))
    write("uint8.tflite", stamp_tflite(_convert(model, tf.uint8), contract("int8-qat")))
    write("wrong_shape.tflite", stamp_tflite(_convert(_keras_model(30)), contract("float")))

    onnx_contract = contract("float").replace(layout="NCHW")
    for name, static in (("float_dynamic.onnx", False), ("float_static.onnx", True)):
        proto = _onnx_model(static)
        stamp_onnx(proto, onnx_contract)
        write(name, proto.SerializeToString())

    kernel, bias = weights()
    np.savez(out / "weights.npz", kernel=kernel, bias=bias)
    written.append(out / "weights.npz")
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for path in build(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA):
        print(f"{path}  {path.stat().st_size} bytes")
