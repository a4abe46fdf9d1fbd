"""Coral readiness: scripts/edgetpu_readiness.py on fixture and synthetic models; the Edge TPU delegate path."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from edge_runtime import DeviceError, backends, load_model
from edge_runtime.watch import main as watch_main
from script_module import load_script

readiness = load_script("edgetpu_readiness")


# ------------------------------------------------------------------------ synthetic models


def _schema():
    return pytest.importorskip("ai_edge_litert.schema_py_generated")


def build_model(tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int]) -> bytes:
    """A TFLite flatbuffer from plain dicts, with the schema's object API (no TensorFlow needed).

    tensor: name, dtype ('INT8', ...), shape, optional data (bytes: a constant), signature, quant (default True)
    op: op ('CONV_2D', ... or 'CUSTOM:name'), inputs, outputs, optional options (an *OptionsT) + options_type
    """
    flatbuffers = pytest.importorskip("flatbuffers")
    s = _schema()
    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]
    sg = s.SubGraphT()
    sg.tensors, sg.operators, sg.inputs, sg.outputs = [], [], inputs, outputs
    for spec in tensors:
        t = s.TensorT()
        t.name = spec["name"].encode()
        t.type = getattr(s.TensorType, spec["dtype"])
        t.shape = list(spec["shape"])
        if "signature" in spec:
            t.shapeSignature = list(spec["signature"])
        t.buffer = 0
        if spec.get("data") is not None:
            buf = s.BufferT()
            buf.data = list(spec["data"])
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        if spec.get("quant", True):
            q = s.QuantizationParametersT()
            q.scale, q.zeroPoint = [0.05], [0]
            t.quantization = q
        sg.tensors.append(t)
    codes: dict[str, int] = {}
    model.operatorCodes = []
    for spec in ops:
        name = spec["op"]
        if name not in codes:
            code = s.OperatorCodeT()
            if name.startswith("CUSTOM:"):
                code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
                code.customCode = name.split(":", 1)[1].encode()
            else:
                value = getattr(s.BuiltinOperator, name)
                code.builtinCode = value
                code.deprecatedBuiltinCode = min(value, 127)
            code.version = 1
            codes[name] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        op = s.OperatorT()
        op.opcodeIndex = codes[name]
        op.inputs, op.outputs = spec["inputs"], spec["outputs"]
        if "options" in spec:
            op.builtinOptionsType = getattr(s.BuiltinOptions, spec["options_type"])
            op.builtinOptions = spec["options"]
        sg.operators.append(op)
    model.subgraphs = [sg]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _act(shape=(1, 8, 8, 4), name="x", dtype="INT8", **kw):
    return {"name": name, "dtype": dtype, "shape": shape, **kw}


def _weights(name, shape, dtype="INT8"):
    size = int(np.prod(shape)) * (4 if dtype == "INT32" else 1)
    return {"name": name, "dtype": dtype, "shape": shape, "data": bytes(size)}


def _conv_options(act="NONE", dw=1, dh=1, depthwise=False):
    s = _schema()
    opt = s.DepthwiseConv2DOptionsT() if depthwise else s.Conv2DOptionsT()
    opt.strideW = opt.strideH = 1
    opt.fusedActivationFunction = getattr(s.ActivationFunctionType, act)
    opt.dilationWFactor, opt.dilationHFactor = dw, dh
    if depthwise:
        opt.depthMultiplier = 1
    return opt


def _conv(inp, w, b, out, **kw):
    return {"op": "CONV_2D", "inputs": [inp, w, b], "outputs": [out], "options": _conv_options(**kw),
            "options_type": "Conv2DOptions"}


def _write(tmp_path, data, name="m.tflite"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _small_net(middle: str | None = "HARD_SWISH"):
    """conv(+relu) -> [middle] -> conv: tensors 0 in, 1 w, 2 b, 3 mid, 4 mid2, 5 out."""
    tensors = [_act(name="in"), _weights("w", (4, 3, 3, 4)), _weights("b", (4,), "INT32"), _act(name="mid"),
               _act(name="mid2"), _act(name="out")]
    ops = [_conv(0, 1, 2, 3, act="RELU")]
    if middle:
        ops.append({"op": middle, "inputs": [3], "outputs": [4]})
        ops.append(_conv(4, 1, 2, 5))
    else:
        ops.append(_conv(3, 1, 2, 5))
    return tensors, ops


# ---------------------------------------------------------------------------------- readiness


def test_builtin_names_match_the_schema():
    s = _schema()
    for code, name in enumerate(readiness.BUILTIN_NAMES):
        assert getattr(s.BuiltinOperator, name) == code
    for code, name in enumerate(readiness.TENSOR_TYPES):
        assert getattr(s.TensorType, name) == code


@pytest.mark.parametrize("name,ready", [("int8.tflite", True), ("uint8.tflite", True), ("float32.tflite", False)])
def test_fixture_models(model_dir, name, ready, capsys):
    rep = readiness.analyze(model_dir / name)
    assert rep.ready is ready
    assert readiness.main([str(model_dir / name)]) == (0 if ready else 1)
    out = capsys.readouterr().out
    assert ("result: READY" in out) is ready
    if not ready:
        assert "FLOAT32" in out and "needs int8/uint8 input and output" in out


@pytest.mark.parametrize("name", ["int8.tflite", "uint8.tflite", "float32.tflite"])
def test_operator_list_matches_the_interpreter(model_dir, name):
    """The flatbuffer walk finds the same operators, in order, as the interpreter's own op details."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp = litert.Interpreter(
        model_path=str(model_dir / name),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    expected = [d["op_name"] for d in interp._get_ops_details()]
    assert [o.op for o in readiness.analyze(model_dir / name).operators] == expected


def test_hard_swish_splits_the_graph(tmp_path, capsys):
    tensors, ops = _small_net("HARD_SWISH")
    path = _write(tmp_path, build_model(tensors, ops, [0], [5]))
    rep = readiness.analyze(path)
    assert [o.status for o in rep.operators] == ["edgetpu", "cpu", "cpu"]
    assert rep.first_cpu_op == 1 and rep.mapped == 1 and not rep.ready
    assert rep.operators[0].activation == "RELU"
    assert readiness.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "HARD_SWISH" in out and "minimalistic" in out and "#1..#2 would run on the CPU" in out


def test_relu_only_net_is_ready(tmp_path):
    tensors, ops = _small_net("RELU")
    assert readiness.analyze(_write(tmp_path, build_model(tensors, ops, [0], [5]))).ready


@pytest.mark.parametrize("op", ["DEQUANTIZE", "LEAKY_RELU", "DEPTH_TO_SPACE"])
def test_unsupported_ops(tmp_path, op):
    tensors, ops = _small_net(op)
    rep = readiness.analyze(_write(tmp_path, build_model(tensors, ops, [0], [5])))
    assert rep.operators[1].status == "cpu" and "not on the Edge TPU list" in rep.operators[1].reasons[0]


def test_dynamic_shapes_and_float_io_are_problems(tmp_path):
    tensors, ops = _small_net(None)
    tensors[0] = _act(name="in", signature=(1, -1, -1, 4))
    tensors[5] = _act(name="out", dtype="FLOAT32", quant=False)
    rep = readiness.analyze(_write(tmp_path, build_model(tensors, ops, [0], [5])))
    assert not rep.ready
    assert any("dynamic shapes" in p for p in rep.problems)
    assert any("output 'out' is FLOAT32" in p for p in rep.problems)
    assert "FLOAT32 tensors (not int8/uint8)" in rep.operators[1].reasons


def test_operator_limitations(tmp_path):
    s = _schema()
    pool = s.Pool2DOptionsT()
    pool.strideW = pool.strideH = pool.filterWidth = pool.filterHeight = 2
    pool.fusedActivationFunction = s.ActivationFunctionType.RELU
    pads = np.array([[1, 1], [1, 1], [1, 1], [0, 0]], np.int32).tobytes()
    tensors = [
        _act(name="in"), _weights("w", (4, 3, 3, 4)), _weights("b", (4,), "INT32"), _act(name="c1"),
        _act(name="p1", shape=(1, 4, 4, 4)), {"name": "pads", "dtype": "INT32", "shape": (4, 2), "data": pads, "quant": False},
        _act(name="p2", shape=(3, 6, 6, 4)), _act(name="five", shape=(2, 3, 6, 6, 4)),
        {"name": "wdyn", "dtype": "INT8", "shape": (4, 3, 3, 4)}, _act(name="c2"),
    ]
    ops = [
        _conv(0, 1, 2, 3, dw=2, dh=1),  # different dilations
        {"op": "MAX_POOL_2D", "inputs": [3], "outputs": [4], "options": pool, "options_type": "Pool2DOptions"},
        {"op": "PAD", "inputs": [4, 5], "outputs": [6]},  # pads the batch dimension
        {"op": "RESHAPE", "inputs": [6], "outputs": [7]},  # 5-D with 4 dims > 1
        _conv(0, 8, 2, 9),  # weights not constant
    ]
    rep = readiness.analyze(_write(tmp_path, build_model(tensors, ops, [0], [9])))
    reasons = {o.op + str(o.index): " | ".join(o.reasons) for o in rep.operators}
    assert "different dilation in x and y (2 vs 1)" in reasons["CONV_2D0"]
    assert "fused RELU activation on MAX_POOL_2D" in reasons["MAX_POOL_2D1"]
    assert "pads the batch dimension" in reasons["PAD2"]
    assert "more than 3 dimensions larger than 1" in reasons["RESHAPE3"]
    assert "parameter 'wdyn' is not a constant" in reasons["CONV_2D4"]


def test_compiled_model_and_json(tmp_path):
    tensors = [_act(name="in"), _act(name="out")]
    ops = [{"op": "CUSTOM:edgetpu-custom-op", "inputs": [0], "outputs": [1]}]
    path = _write(tmp_path, build_model(tensors, ops, [0], [1]), "m_edgetpu.tflite")
    assert readiness.main([str(path), "--json", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["ready"] and doc["compiled"] and doc["op_counts"] == {"CUSTOM:edgetpu-custom-op": 1}


def test_unreadable_model(tmp_path, capsys):
    junk = _write(tmp_path, b"\x00" * 64, "junk.tflite")
    assert readiness.main([str(junk)]) == 2
    assert readiness.main([str(tmp_path / "absent.tflite")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_compile_without_and_with_edgetpu_compiler(tmp_path, model_dir, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert readiness.main([str(model_dir / "int8.tflite"), "--compile", "--out", str(tmp_path / "c")]) == 0
    assert "edgetpu_compiler not found" in capsys.readouterr().out
    # A stand-in compiler on the PATH: called as `edgetpu_compiler -s -o OUT MODEL`.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "edgetpu_compiler"
    fake.write_text('#!/bin/sh\necho "Edge TPU Compiler (stand-in) $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    assert readiness.main([str(model_dir / "int8.tflite"), "--compile", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert f"-s -o {tmp_path / 'c'} {model_dir / 'int8.tflite'}" in out


# ------------------------------------------------------------------------- delegate path


def test_edgetpu_runtime_installed_but_no_device(int8_model, monkeypatch):
    """libedgetpu loads but no Coral is plugged in: load_delegate fails -> one clear DeviceError (exit 78)."""
    real = backends.tflite_interpreter_module()

    def no_device(lib):
        raise ValueError(f"Failed to load delegate from {lib}\n")

    monkeypatch.setattr(backends, "tflite_interpreter_module",
                        lambda: backends.SimpleNamespace(Interpreter=real.Interpreter, load_delegate=no_device, name="fake"))
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda lib: None)
    with pytest.raises(DeviceError) as info:
        load_model(int8_model, device="edgetpu")
    message = str(info.value)
    assert "Edge TPU unavailable" in message and "Failed to load delegate" in message and "\n" not in message
    assert info.value.exit_code == 78
    model = load_model(int8_model, device="edgetpu", cpu_fallback=True)
    assert model.backend.device == "cpu"


def test_watch_with_edgetpu_and_no_device(tmp_path, int8_model, capsys):
    (tmp_path / "in").mkdir()
    code = watch_main(["-m", str(int8_model), "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                       "--device", "edgetpu", "--once"])
    assert code == 78 and "Edge TPU unavailable" in capsys.readouterr().err
