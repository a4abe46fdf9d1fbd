"""Hostile and broken models: refused with one line and exit 78 before any interpreter sees them."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime import ModelError, backends, load_model
from edge_runtime.cli import main
from edge_runtime.onnx_validate import OnnxFormatError, external_locations, unsafe_location
from edge_runtime.tflite_metadata import FlatbufferError
from edge_runtime.tflite_validate import validate_tflite

TESTS = Path(__file__).resolve().parent
HOSTILE = TESTS / "data" / "hostile"


@pytest.fixture(scope="module")
def hostile_dir() -> Path:
    if not (HOSTILE / "bad_tensor_index.tflite").is_file():
        pytest.importorskip("flatbuffers")
        pytest.importorskip("onnx")
        sys.path.insert(0, str(TESTS))
        import make_hostile_fixtures

        make_hostile_fixtures.build(HOSTILE)
    return HOSTILE


@pytest.fixture
def no_interpreter(monkeypatch):
    """Any attempt to build a TFLite interpreter or an ONNX session fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the model reached the interpreter")

    monkeypatch.setattr(backends, "tflite_interpreter_module", forbidden)
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(ort, "InferenceSession", forbidden)


def _image(folder: Path) -> Path:
    path = folder / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def cli_refuses(capsys, tmp_path: Path, model: Path, message: str) -> str:
    """The CLI exits 78 with one 'error:' line containing `message`; nothing is written, inputs unchanged."""
    photo = _image(tmp_path)
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    model_digest = hashlib.sha256(model.read_bytes()).hexdigest()
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["-m", str(model), str(photo)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edge-restore: error: "), err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert hashlib.sha256(photo.read_bytes()).hexdigest() == digest
    assert hashlib.sha256(model.read_bytes()).hexdigest() == model_digest
    return err


# ---------------------------------------------------------------------------- TFLite


HOSTILE_TFLITE = {
    "bad_tensor_index": "operator 0 input tensor index 999 out of range (5 tensors)",
    "bad_buffer_index": "tensor 2 buffer index 500 out of range (9 buffers)",
    "bad_opcode_index": "operator 1 opcode index 7 out of range (2 operator codes)",
    "bad_io_index": "input tensor index 42 out of range (5 tensors)",
    "negative_dim": "tensor 3 has a negative dimension [1, -32, 32, 3]",
    "huge_tensor": "tensor 3 needs 30,000,000,000 bytes",
    "buffer_size_mismatch": "tensor 2 has 10 bytes of data but shape [3, 3, 3, 3] int8 needs 81",
    "quant_mismatch": "tensor 2 has 3 quantization scales but 1 zero points",
    "zero_scale": "tensor 0 has a zero, negative or non-finite quantization scale",
    "writes_constant": "operator 0 writes into constant tensor 2",
    "control_flow": "operator WHILE (control flow / subgraph call) is not allowed",
    "bad_version": "TFLite schema version 2 is not supported",
    "zero_point_range": "tensor 6 has zero point 296 outside the uint8 range [0, 255]",
    "tiny_scale": "tensor 0 has a quantization scale outside [1e-20, 1e+20]",
    "unquantized_int8": "tensor 3 is int8 but has no quantization parameters",
    "name_not_utf8": "tensor 0 has a name that is not valid UTF-8",
}
#: Found by fuzzing the interpreter: these kill the process inside LiteRT 2.3 when loaded directly.
CRASH_THE_INTERPRETER = ("zero_point_range", "tiny_scale", "unquantized_int8")


@pytest.mark.parametrize("name", sorted(HOSTILE_TFLITE))
def test_structurally_hostile_tflite_is_refused_before_the_interpreter(tmp_path, hostile_dir, capsys, no_interpreter, name):
    model = hostile_dir / f"{name}.tflite"
    with pytest.raises(ModelError, match="refused before loading") as info:
        load_model(model)
    assert HOSTILE_TFLITE[name] in str(info.value) and "\n" not in str(info.value)
    cli_refuses(capsys, tmp_path, model, HOSTILE_TFLITE[name])


def test_models_that_crash_the_raw_interpreter_are_refused_first(hostile_dir):
    """Evidence for the validator: handed straight to LiteRT, these models crash the process
    (SIGSEGV / SIGABRT); through load_model they are a one-line ModelError."""
    pytest.importorskip("ai_edge_litert")
    code = (
        "import sys, numpy as np\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "it = Interpreter(model_content=open(sys.argv[1], 'rb').read()); it.allocate_tensors()\n"
        "d = it.get_input_details()[0]; it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); it.invoke()\n"
    )
    import subprocess

    for name in CRASH_THE_INTERPRETER:
        model = hostile_dir / f"{name}.tflite"
        raw = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, timeout=120)
        assert raw.returncode < 0, (name, raw.returncode)  # killed by a signal
        with pytest.raises(ModelError, match="refused before loading"):
            load_model(model)


def test_wrong_dtype_is_refused_from_the_flatbuffer(tmp_path, hostile_dir, capsys, no_interpreter):
    cli_refuses(capsys, tmp_path, hostile_dir / "wrong_dtype.tflite", "input dtype int16 is not supported (float32, int8 or uint8)")


def test_wrong_shape_and_no_contract(tmp_path, model_dir, capsys, no_interpreter):
    cli_refuses(capsys, tmp_path, model_dir / "wrong_shape.tflite", "input shape [1, 30, 30, 3] does not match the contract")
    cli_refuses(capsys, tmp_path, model_dir / "no_contract.tflite", "carries no 'edge_restore_contract' metadata")


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.33, 0.5, 0.8, 0.95, 0.999])
def test_truncated_tflite(tmp_path, model_dir, capsys, no_interpreter, fraction):
    data = (model_dir / "int8.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: max(8, int(len(data) * fraction))])
    cli_refuses(capsys, tmp_path, cut, "cut.tflite")


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_tflite(tmp_path, capsys, no_interpreter, seed):
    rng = np.random.default_rng(seed)
    data = bytearray(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    if seed % 2:
        data[4:8] = b"TFL3"  # gets past the identifier check: the structure walk must refuse it
    path = tmp_path / "random.tflite"
    path.write_bytes(bytes(data))
    err = cli_refuses(capsys, tmp_path, path, "random.tflite")
    assert ("missing 'TFL3'" in err) == (seed % 2 == 0)


def test_real_exported_models_pass_the_validator(model_dir):
    """The validator must not refuse what export/ produces (exported_int8.tflite: a 20-step `small`
    model exported at tile 32) nor the fixtures."""
    for name in ("exported_int8.tflite", "int8.tflite", "uint8.tflite", "float32.tflite"):
        summary = validate_tflite((model_dir / name).read_bytes())
        assert len(summary.inputs) == 1 and summary.inputs[0].shape == (1, 32, 32, 3)
    model = load_model(model_dir / "exported_int8.tflite")
    assert model.restore(np.zeros((40, 50, 3), np.uint8)).shape == (40, 50, 3)


def _aliased_model(n: int) -> bytes:
    """A valid-looking model of n subgraphs that all share one table of n tensors that all share one
    tensor: about 8n bytes of file, n * n tensors to visit if the walk did not budget its work."""
    flatbuffers = pytest.importorskip("flatbuffers")
    b = flatbuffers.Builder(0)
    b.StartVector(4, 1, 4)
    b.PrependInt32(4)
    shape = b.EndVector()
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    tensor = b.EndObject()
    b.StartVector(4, n, 4)
    for _ in range(n):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    subgraph = b.EndObject()
    b.StartVector(4, n, 4)
    for _ in range(n):
        b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    b.StartObject(1)
    empty = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(empty)
    buffers = b.EndVector()
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_validator_work_is_bounded():
    """Aliased vectors cannot make the walk quadratic: it stops at a budget proportional to the file."""
    import time

    small = validate_tflite(_aliased_model(20))  # a few hundred visits: fine
    assert small.subgraphs == 20 and small.tensors == 400
    data = _aliased_model(4000)  # 16 million tensor visits without a budget
    start = time.perf_counter()
    with pytest.raises(FlatbufferError, match="too large for its file size"):
        validate_tflite(data)
    assert time.perf_counter() - start < 5.0


# ------------------------------------------------------------------------------ ONNX


@pytest.mark.parametrize("name,why", [("external_outside", "a '..' component"), ("external_absolute", "an absolute path")])
def test_onnx_external_data_outside_its_folder_is_refused(tmp_path, hostile_dir, capsys, no_interpreter, name, why):
    err = cli_refuses(capsys, tmp_path, hostile_dir / f"{name}.onnx", "refused: tensor 'w' keeps its data in")
    assert why in err and "external data must stay inside the model's folder" in err


def test_onnx_external_data_through_a_symlink_is_refused(tmp_path, hostile_dir, capsys, no_interpreter):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(hostile_dir / "external_inside.onnx", models / "m.onnx")
    secret = tmp_path / "secret.bin"
    shutil.copy(hostile_dir / "external_inside.bin", secret)
    (models / "external_inside.bin").symlink_to(secret)
    err = cli_refuses(capsys, tmp_path, models / "m.onnx", "resolves outside the model's folder")
    assert "refused" in err


def test_onnx_external_data_inside_its_folder_loads(tmp_path, hostile_dir, model_dir, reference):
    pytest.importorskip("onnxruntime")
    for name in ("external_inside.onnx", "external_inside.bin"):
        shutil.copy(hostile_dir / name, tmp_path / name)
    pixels = np.random.default_rng(3).random((32, 32, 3)).astype(np.float32)
    out = load_model(tmp_path / "external_inside.onnx").restore(pixels)
    assert np.abs(out - reference(pixels)).max() < 1e-4


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
def test_truncated_onnx(tmp_path, model_dir, capsys, fraction):
    data = (model_dir / "float_static.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: int(len(data) * fraction)])
    cli_refuses(capsys, tmp_path, cut, "cut.onnx")


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_onnx(tmp_path, capsys, seed):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 1024, dtype=np.uint8).tobytes())
    cli_refuses(capsys, tmp_path, path, "is not a loadable ONNX model")


def test_onnx_walker_units(tmp_path):
    assert external_locations(b"") == []
    with pytest.raises(OnnxFormatError):
        external_locations(b"\x3a\xff\xff\xff\xff\x0f")  # graph field longer than the file
    with pytest.raises(OnnxFormatError, match="wire type"):
        external_locations(b"\x0b")
    for location, bad in [("w.bin", False), ("sub/w.bin", False), ("../w.bin", True), ("/etc/passwd", True),
                          ("C:\\\\w.bin", True), ("a/../../w.bin", True), ("", True), ("w\x00.bin", True)]:
        assert (unsafe_location(location, tmp_path) is not None) == bad, location


# ---------------------------------------------------------------------------- contract JSON


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"value_range": 5}, "value_range must be a list"),
        ({"value_range": None}, "value_range must be a list"),
        ({"tile_size": 32.0}, "tile_size must be an integer"),
        ({"tile_size": True}, "tile_size must be an integer"),
        ({"channels": "3"}, "channels must be an integer"),
        ({"task": ["denoise"]}, "task must be a string"),
        ({"residual": "yes"}, "residual must be true/false"),
        ({"recipe": []}, "recipe an object"),
        ({"overlap": 1e9}, "overlap must be an integer"),
    ],
)
def test_contract_fields_of_the_wrong_type_are_contract_errors(changes, message):
    """Found by the fuzzer: `value_range: 5` raised TypeError out of from_json; floats passed as sizes."""
    import json

    from edge_runtime.contract import ContractError, ModelContract

    data = {**json.loads(ModelContract().to_json()), **changes}
    with pytest.raises(ContractError, match=message):
        ModelContract.from_json(json.dumps(data))
