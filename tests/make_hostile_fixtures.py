"""Build the hostile model fixtures in tests/data/hostile/ from the committed tiny fixtures.

    .venv/bin/python tests/make_hostile_fixtures.py

Each file is a copy of tests/data/int8.tflite (or float_static.onnx) with one field made
hostile, so the only reason to refuse it is that field. Needs the `flatbuffers` package and the
TFLite schema module (shipped with ai-edge-litert or TensorFlow) and `onnx`; the committed files
let the tests run without any of them.

TFLite (int8.tflite: tensors 0 input, 1 bias, 2 weights, 3 conv out, 4 output; ops CONV_2D, ADD):

    bad_tensor_index.tflite     operator 0 reads tensor 999
    bad_buffer_index.tflite     tensor 2 points at buffer 500
    bad_opcode_index.tflite     operator 1 uses operator code 7 of 2
    bad_io_index.tflite         subgraph input is tensor 42
    negative_dim.tflite         tensor 3 has shape [1, -32, 32, 3]
    huge_tensor.tflite          tensor 3 has shape [1, 100000, 100000, 3] (30 GB)
    buffer_size_mismatch.tflite the weights buffer holds 10 bytes for 81 int8 weights
    quant_mismatch.tflite       tensor 2 has 3 scales but 1 zero point
    zero_scale.tflite           the input tensor's scale is 0
    writes_constant.tflite      operator 0 writes into the constant weights tensor
    control_flow.tflite         an extra WHILE operator code (subgraph call)
    wrong_dtype.tflite          input tensor is int16, zero point 0 (shape and contract otherwise fine)
    bad_version.tflite          schema version 2
    zero_point_range.tflite     output zero point 296 for uint8 (from uint8.tflite)      } crash LiteRT 2.3
    tiny_scale.tflite           input scale 1e-38 (from uint8.tflite)                    } (segfault) when
    unquantized_int8.tflite     int8 activation without scale / zero point (int8.tflite) } loaded directly
    name_not_utf8.tflite        input tensor name b"input\xff\xfe" (UnicodeDecodeError in get_input_details)

ONNX (float_static.onnx, initializer "w" moved to external data):

    external_outside.onnx       location "../outside.bin"
    external_absolute.onnx      location "/etc/hostname"
    external_inside.onnx        location "external_inside.bin" beside it (legitimate, loads)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
HOSTILE = DATA / "hostile"


def _schema():
    for name in ("ai_edge_litert.schema_py_generated", "tflite_runtime.schema_py_generated",
                 "tensorflow.lite.python.schema_py_generated"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("no TFLite schema module (install ai-edge-litert)")


def _mutate(source: Path, change) -> bytes:
    import flatbuffers

    sg = _schema()
    model = sg.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    change(model, sg)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tflite_cases():
    import numpy as np

    def tensor(model, i):
        return model.subgraphs[0].tensors[i]

    def huge(m, sg):
        tensor(m, 3).shape = np.array([1, 100000, 100000, 3], np.int32)

    def negative(m, sg):
        tensor(m, 3).shape = np.array([1, -32, 32, 3], np.int32)

    def bad_tensor_index(m, sg):
        m.subgraphs[0].operators[0].inputs = np.array([0, 2, 999], np.int32)

    def bad_buffer_index(m, sg):
        tensor(m, 2).buffer = 500

    def bad_opcode_index(m, sg):
        m.subgraphs[0].operators[1].opcodeIndex = 7

    def bad_io_index(m, sg):
        m.subgraphs[0].inputs = np.array([42], np.int32)

    def size_mismatch(m, sg):
        m.buffers[tensor(m, 2).buffer].data = np.zeros(10, np.uint8)

    def quant_mismatch(m, sg):
        tensor(m, 2).quantization.zeroPoint = np.array([0], np.int64)

    def zero_scale(m, sg):
        tensor(m, 0).quantization.scale = np.array([0.0], np.float32)

    def writes_constant(m, sg):
        m.subgraphs[0].operators[0].outputs = np.array([2], np.int32)

    def control_flow(m, sg):
        code = sg.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = sg.BuiltinOperator.WHILE
        code.version = 1
        m.operatorCodes.append(code)

    def wrong_dtype(m, sg):
        tensor(m, 0).type = sg.TensorType.INT16
        tensor(m, 0).quantization.zeroPoint = np.array([0], np.int64)  # int16 is symmetric

    def bad_version(m, sg):
        m.version = 2

    def unquantized_int8(m, sg):
        tensor(m, 3).quantization = None

    def name_not_utf8(m, sg):
        tensor(m, 0).name = b"input\xff\xfe"

    return {
        "bad_tensor_index": bad_tensor_index, "bad_buffer_index": bad_buffer_index,
        "bad_opcode_index": bad_opcode_index, "bad_io_index": bad_io_index, "negative_dim": negative,
        "huge_tensor": huge, "buffer_size_mismatch": size_mismatch, "quant_mismatch": quant_mismatch,
        "zero_scale": zero_scale, "writes_constant": writes_constant, "control_flow": control_flow,
        "wrong_dtype": wrong_dtype, "bad_version": bad_version, "unquantized_int8": unquantized_int8,
        "name_not_utf8": name_not_utf8,
    }


def _uint8_cases():
    import numpy as np

    def zero_point_range(m, sg):
        m.subgraphs[0].tensors[6].quantization.zeroPoint = np.array([296], np.int64)

    def tiny_scale(m, sg):
        m.subgraphs[0].tensors[0].quantization.scale = np.array([1e-38], np.float32)

    return {"zero_point_range": zero_point_range, "tiny_scale": tiny_scale}


def _external(location: str) -> bytes:
    import onnx

    proto = onnx.load(str(DATA / "float_static.onnx"))
    for init in proto.graph.initializer:
        if init.name != "w":
            continue
        raw = init.raw_data or onnx.numpy_helper.to_array(init).tobytes()
        del init.float_data[:]
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
        return proto.SerializeToString(), raw
    raise ValueError("no initializer 'w'")


def build(out: Path = HOSTILE) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, change in _tflite_cases().items():
        path = out / f"{name}.tflite"
        path.write_bytes(_mutate(DATA / "int8.tflite", change))
        written.append(path)
    for name, change in _uint8_cases().items():
        path = out / f"{name}.tflite"
        path.write_bytes(_mutate(DATA / "uint8.tflite", change))
        written.append(path)
    for name, location in (("external_outside", "../outside.bin"), ("external_absolute", "/etc/hostname"),
                           ("external_inside", "external_inside.bin")):
        data, raw = _external(location)
        (out / f"{name}.onnx").write_bytes(data)
        written.append(out / f"{name}.onnx")
        if name == "external_inside":
            (out / location).write_bytes(raw)
            written.append(out / location)
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for path in build():
        print(f"{path}  {path.stat().st_size} bytes")
