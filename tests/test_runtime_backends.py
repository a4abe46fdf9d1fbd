"""Backends: model validation, quantization read from the model, interpreter choice, Edge TPU."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import DeviceError, ModelError, backends, load_model
from edge_runtime.backends import dequantize, open_backend, quantize
from edge_runtime.tiling import pixels_to_unit
from edge_runtime.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent


def _tile(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 32, 32, 3), dtype=np.float32)


@pytest.mark.parametrize(
    "name,kind,dtype",
    [
        ("float32.tflite", "tflite", np.float32),
        ("int8.tflite", "tflite", np.int8),
        ("uint8.tflite", "tflite", np.uint8),
        ("float_static.onnx", "onnx", np.float32),
        ("float_dynamic.onnx", "onnx", np.float32),
    ],
)
def test_backends_load_and_agree(model_dir, name, kind, dtype):
    backend = open_backend(model_dir / name)
    assert backend.kind == kind and backend.io_dtype == np.dtype(dtype)
    assert backend.tile_size == 32 and backend.contract.overlap == 4
    reference = open_backend(model_dir / "float32.tflite").run(_tile()).copy()
    out = backend.run(_tile())
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert psnr(out, reference) >= (40.0 if dtype != np.float32 else 80.0)


def test_quantization_parameters_are_read_from_the_model(model_dir):
    backend = open_backend(model_dir / "int8.tflite")
    details_in = backend.interpreter.get_input_details()[0]["quantization"]
    details_out = backend.interpreter.get_output_details()[0]["quantization"]
    assert (backend.in_scale, backend.in_zero) == (pytest.approx(details_in[0]), details_in[1])
    assert (backend.out_scale, backend.out_zero) == (pytest.approx(details_out[0]), details_out[1])
    # The fixture's output grid is NOT the pinned 1/255, -128: assuming it would be wrong.
    assert abs(backend.out_scale - 1 / 255) > 1e-4 and backend.out_zero != -128
    u8 = open_backend(model_dir / "uint8.tflite")
    assert u8.in_zero == 0 and u8.io_dtype == np.uint8


@pytest.mark.parametrize("name", ["int8.tflite", "uint8.tflite", "exported_int8.tflite"])
def test_pixel_input_skips_the_float_round_trip_bit_for_bit(model_dir, name):
    backend = open_backend(model_dir / name)
    assert backend.takes_pixels  # scale 1/255 and zero point -128 (uint8: 0): the pixel grid
    pixels = np.random.default_rng(3).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    pixels.flat[:256] = np.arange(256)  # every 8-bit value
    as_float = np.empty(pixels.shape, np.float32)
    np.multiply(pixels, 1.0 / 255, out=as_float, casting="unsafe")
    expected = backend.run(as_float).copy()
    got = backend.run_pixels(pixels)
    if backend.gives_pixels:  # the output is the pixel grid too: 8-bit pixels back
        assert got.dtype == np.uint8
        got = pixels_to_unit(got, np.empty(got.shape, np.float32))
    assert np.array_equal(got, expected)


def test_only_a_pixel_grid_output_gives_pixels(model_dir):
    # exported models pin both ends to scale 1/255, zero point -128; the fixtures' own int8/uint8
    # models quantize the output differently, so they must return floats
    assert open_backend(model_dir / "exported_int8.tflite").gives_pixels
    for name in ("int8.tflite", "uint8.tflite", "float32.tflite"):
        backend = open_backend(model_dir / name)
        assert not backend.gives_pixels
        if backend.takes_pixels:
            assert backend.run_pixels(np.zeros((1, 32, 32, 3), np.uint8)).dtype == np.float32


def test_pixel_input_is_refused_where_the_input_is_not_the_pixel_grid(model_dir):
    backend = open_backend(model_dir / "float32.tflite")
    assert not backend.takes_pixels
    with pytest.raises(NotImplementedError, match="8-bit pixels"):
        backend.run_pixels(np.zeros((1, 32, 32, 3), np.uint8))
    assert load_model(model_dir / "float32.tflite").pixel_runner is None


def test_quantize_rounds_and_clips():
    x = np.array([-1.0, 0.0, 0.5 / 255, 1.5 / 255, 1.0, 2.0], np.float32)
    q = quantize(x, 1 / 255, -128, np.empty(6, np.int8))
    assert q.tolist() == [-128, -128, -128, -126, 127, 127]  # round half to even, clipped
    assert quantize(x, 1 / 255, 0, np.empty(6, np.uint8)).tolist() == [0, 0, 0, 2, 255, 255]
    out = dequantize(np.array([-128, 0, 127], np.int8), 1 / 255, -128, np.empty(3, np.float32))
    assert np.allclose(out, [0.0, 128 / 255, 1.0])
    assert dequantize(np.array([0, 255], np.uint8), 0.01, 10, np.empty(2, np.float32)).tolist() == [0.0, 1.0]


def test_threads_default_and_explicit(float_model):
    import os

    assert load_model(float_model).backend.threads == (os.cpu_count() or 1)
    assert load_model(float_model, threads=1).backend.threads == 1


def test_wrong_shape_is_rejected(model_dir):
    with pytest.raises(ModelError, match=r"input shape \[1, 30, 30, 3\] does not match the contract"):
        load_model(model_dir / "wrong_shape.tflite")


def test_missing_contract_is_rejected(model_dir):
    with pytest.raises(ModelError, match="carries no 'edge_restore_contract' metadata"):
        load_model(model_dir / "no_contract.tflite")


def test_not_a_model_and_missing_model(tmp_path, model_dir):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite model"):
        load_model(junk)
    other = tmp_path / "model.bin"
    other.write_bytes(b"hello world, not a model")
    with pytest.raises(ModelError, match="not a TFLite .* or ONNX"):
        load_model(other)
    with pytest.raises(ModelError, match="model not found"):
        load_model(tmp_path / "absent.tflite")
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_model(bad_onnx)


def test_truncated_tflite_gives_one_line_error(tmp_path, model_dir):
    data = (model_dir / "float32.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError) as info:
        load_model(cut)
    assert "\n" not in str(info.value)


def test_onnx_without_contract(tmp_path, model_dir):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_dir / "float_static.onnx"))
    del proto.metadata_props[:]
    path = tmp_path / "plain.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match="carries no 'edge_restore_contract' metadata"):
        load_model(path)


def test_onnx_dynamic_runs_any_size(model_dir):
    backend = open_backend(model_dir / "float_dynamic.onnx")
    assert backend.dynamic
    assert backend.run(np.zeros((1, 20, 28, 3), np.float32)).shape == (1, 20, 28, 3)
    assert not open_backend(model_dir / "float_static.onnx").dynamic


def test_edgetpu_missing_is_a_clear_error(int8_model):
    with pytest.raises(DeviceError) as info:
        load_model(int8_model, device="edgetpu")
    message = str(info.value)
    assert "Edge TPU unavailable" in message and "--cpu-fallback" in message and "\n" not in message
    assert info.value.exit_code == 78


def test_edgetpu_cpu_fallback_warns_and_runs(int8_model, caplog):
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        model = load_model(int8_model, device="edgetpu", cpu_fallback=True)
    assert model.backend.kind == "tflite" and model.backend.device == "cpu"
    assert any("falling back to the CPU" in r.getMessage() for r in caplog.records)
    assert model.restore(np.zeros((8, 8, 3), np.uint8)).shape == (8, 8, 3)


def test_edgetpu_delegate_is_used_when_it_loads(int8_model, monkeypatch):
    """With a (fake) delegate that loads, the interpreter is built with it."""
    seen = {}
    real = backends.tflite_interpreter_module()

    def fake_module():
        class Interp(real.Interpreter):
            def __init__(self, *args, experimental_delegates=None, **kwargs):
                seen["delegates"] = experimental_delegates
                super().__init__(*args, **kwargs)

        return backends.SimpleNamespace(Interpreter=Interp, load_delegate=lambda lib: f"delegate:{lib}", name="fake")

    monkeypatch.setattr(backends, "tflite_interpreter_module", fake_module)
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda lib: None)
    model = load_model(int8_model, device="edgetpu")
    assert seen["delegates"] == ["delegate:libedgetpu.so.1"]
    assert model.backend.kind == "tflite-edgetpu"


def test_edgetpu_compiled_model_needs_the_tpu(tmp_path, int8_model, caplog):
    compiled = tmp_path / "denoise_int8_edgetpu.tflite"
    compiled.write_bytes(int8_model.read_bytes() + b"edgetpu-custom-op")
    with pytest.raises(ModelError, match="compiled for the Edge TPU"):
        load_model(compiled)
    (tmp_path / "denoise_int8.tflite").write_bytes(int8_model.read_bytes())
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        model = load_model(compiled, device="edgetpu", cpu_fallback=True)
    assert model.path.name == "denoise_int8.tflite"


def test_no_interpreter_names_the_extra(monkeypatch):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ModelError, match=r'pip install "edge-restore\[edge\]"'):
        backends.tflite_interpreter_module()


def test_runtime_imports_nothing_heavy():
    code = (
        "import sys, edge_runtime, edge_runtime.cli, edge_runtime.api, edge_runtime.tiling, edge_runtime.imageio, "
        "edge_runtime.classic;"
        "heavy = [m for m in ('torch', 'tensorflow', 'cv2', 'onnxruntime', 'ai_edge_litert', 'tflite_runtime', "
        "'scipy', 'skimage', 'tqdm') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_runtime_sources_have_no_forbidden_imports():
    forbidden = ("import torch", "from torch", "import cv2", "from cv2", "import tensorflow", "from tensorflow")
    for path in (ROOT / "edge_runtime").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(forbidden):
                # The single lazy TensorFlow fallback lives inside tflite_interpreter_module().
                assert path.name == "backends.py" and line.startswith("        "), f"{path.name}:{number}: {line}"


def test_onnx_without_onnxruntime_is_a_clear_error(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelError, match="onnxruntime is not installed"):
        load_model(model_dir / "float_static.onnx")
    assert load_model(model_dir / "float32.tflite").backend.kind == "tflite"  # TFLite needs no onnxruntime
