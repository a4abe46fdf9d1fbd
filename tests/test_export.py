"""Export end to end on a tiny QAT model: ONNX float/QDQ, TFLite float/FP16/INT8/PTQ, audit, parity."""

import json
import os
import re

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

from edge_runtime.backends import open_backend  # noqa: E402
from edge_runtime.contract import METADATA_KEY, ModelContract  # noqa: E402
from edge_runtime.tflite_metadata import read_contract  # noqa: E402
from export.audit import audit_scales  # noqa: E402
from export.cli import main as export_main  # noqa: E402
from export.onnx_to_tf import GraphTranslator, UnsupportedGraphError  # noqa: E402
from export.tflite_convert import tflite_int8_from_qdq  # noqa: E402
from export.verify import main as parity_main, parity_ladder  # noqa: E402
from train.cli import main as train_main  # noqa: E402
from script_module import load_script  # noqa: E402

pytestmark = pytest.mark.slow
TILE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    common = ["--preset", "tiny", "--patch", "32", "--batch", "4", "--threads", "1", "--val-every", "1000"]
    assert train_main([*common, "--steps", "20", "--out", str(root / "float")]) == 0
    assert train_main([*common, "--qat", "--init-from", str(root / "float" / "best.pt"), "--steps", "10", "--lr", "1e-4",
                       "--calib-batches", "4", "--out", str(root / "qat")]) == 0
    out = root / "models"
    assert export_main([str(root / "qat" / "best.pt"), "--out", str(out), "--name", "tiny", "--tile", str(TILE),
                        "--overlap", "4", "--ptq", "--ptq-samples", "4"]) == 0
    return root, out


def test_every_format_is_written_with_the_contract(exported):
    _, out = exported
    for suffix in ("float.onnx", "qdq.onnx", "float.tflite", "fp16.tflite", "int8.tflite", "int8_ptq.tflite"):
        assert (out / f"tiny_{suffix}").is_file(), suffix
    for suffix, quant in (("float.tflite", "float"), ("fp16.tflite", "fp16"), ("int8.tflite", "int8-qat"),
                          ("int8_ptq.tflite", "int8-ptq")):
        contract = read_contract((out / f"tiny_{suffix}").read_bytes())
        assert (contract.quantization, contract.tile_size, contract.size_multiple) == (quant, TILE, 4)
        assert contract.task == "denoise" and contract.recipe["step"] > 0
    proto = onnx.load(str(out / "tiny_qdq.onnx"))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert ModelContract.from_json(meta[METADATA_KEY]).layout == "NCHW"
    assert proto.opset_import[0].version >= 13
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


@pytest.mark.parametrize("name", ["int8", "int8_ptq"])
def test_integer_models_are_fully_int8_with_pixel_grid_io(exported, name):
    from ai_edge_litert.interpreter import Interpreter

    _, out = exported
    interp = Interpreter(model_path=str(out / f"tiny_{name}.tflite"))
    dtypes = {d["dtype"] for d in interp.get_tensor_details()}
    assert dtypes <= {np.int8, np.int32}, dtypes  # int32 only for biases
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == outp["dtype"] == np.int8
    assert list(inp["shape"]) == [1, TILE, TILE, 3]
    ops = {o["op_name"] for o in interp._get_ops_details()}
    assert "HARD_SWISH" not in ops and {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL"} <= ops  # XNNPACK-friendly
    if name == "int8":  # QAT pins the I/O to the 8-bit pixel grid
        assert inp["quantization"] == pytest.approx((1 / 255, -128)) and outp["quantization"] == pytest.approx((1 / 255, -128))


def test_scale_audit_matches_every_activation(exported):
    _, out = exported
    report = json.loads((out / "tiny_scale_audit.json").read_text())
    assert report["ok"] and report["matched"] == report["tflite_activations"] > 20
    # a re-calibrated model must fail the audit: PTQ scales are not the QAT ones
    ptq = audit_scales(onnx.load(str(out / "tiny_qdq.onnx")), (out / "tiny_int8_ptq.tflite").read_bytes())
    assert not ptq.ok and ptq.mismatches


def test_uint8_io_for_coral_pipelines(exported):
    _, out = exported
    data = tflite_int8_from_qdq(onnx.load(str(out / "tiny_qdq.onnx")), read_contract((out / "tiny_int8.tflite").read_bytes()),
                                io_dtype="uint8")
    path = out / "tiny_uint8.tflite"
    path.write_bytes(data)
    backend = open_backend(path, threads=1)
    assert backend.io_dtype == np.uint8
    tile = np.random.default_rng(0).random((1, TILE, TILE, 3)).astype(np.float32)
    same = open_backend(out / "tiny_int8.tflite", threads=1).run(tile).copy()
    assert np.abs(backend.run(tile) - same).max() <= 1 / 255 + 1e-6


def test_parity_ladder_passes_on_every_rung(exported):
    root, out = exported
    shipped = out / "tiny_qat.pt"  # the stripped checkpoint written beside the models
    assert shipped.stat().st_size < (root / "qat" / "best.pt").stat().st_size / 2
    rungs, quality, agreements = parity_ladder(str(shipped), str(out), "tiny", count=2)
    assert all(r.ok for r in rungs), rungs
    assert [r.threshold for r in rungs[2:]] == [0.999, 0.999]  # the int8 rung
    # the agreement table: the two int8 rungs, ORT's own int8 kernels, and TFLite reference vs XNNPACK
    assert [(a.reference, a.candidate) for a in agreements][-1] == ("TFLite INT8 (reference kernels)", "TFLite INT8")
    for a in agreements:
        # one step of the last int8 tensor (the residual, pinned to 2/255) is two output levels
        assert a.exact <= a.within_1 <= a.within_2 == a.within_step <= 1.0, a
        assert a.within_step >= 0.999 and a.psnr_between > 50, a
    assert rungs[0].value < 1e-4
    assert abs(quality["TFLite INT8"] - quality["torch fake-quant"]) < 0.1
    report = out / "parity.json"
    assert parity_main([str(root / "qat" / "best.pt"), str(out), "--name", "tiny", "--count", "1", "--json", str(report)]) == 0
    saved = json.loads(report.read_text())
    assert len(saved["rungs"]) == 4 and len(saved["int8_agreement"]) == 4
    with pytest.raises(SystemExit) as exc:  # a share above 1 can never pass: refused up front
        parity_main([str(root / "qat" / "best.pt"), str(out), "--name", "tiny", "--int8-share", "1.5"])
    assert exc.value.code == 2


def test_parity_reports_missing_files(exported, capsys):
    root, out = exported
    assert parity_main([str(root / "qat" / "best.pt"), str(out), "--name", "nope"]) == 1
    assert "missing exported files" in capsys.readouterr().err


def test_unsupported_ops_are_named():
    node = onnx.helper.make_node("Sigmoid", ["input"], ["output"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                                   [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, 4, 4])])
    with pytest.raises(UnsupportedGraphError, match="Sigmoid"):
        GraphTranslator(onnx.helper.make_model(graph))(np.zeros((1, 4, 4, 3), np.float32))


def test_export_refuses_a_tile_that_is_not_a_multiple(exported, capsys):
    root, out = exported
    assert export_main([str(root / "qat" / "best.pt"), "--out", str(out / "bad"), "--tile", "30"]) == 1
    assert "multiple" in capsys.readouterr().err


def test_layer_agreement_pairs_every_tflite_op_with_its_qdq_twin(exported):
    script = load_script("int8_layer_agreement")
    _, out = exported
    tiles = np.random.default_rng(1).random((1, TILE, TILE, 3)).astype(np.float32)
    rows = script.layer_agreement(str(out / "tiny_qdq.onnx"), str(out / "tiny_int8.tflite"), tiles)
    names = {r.op_name for r in rows}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL"} <= names and len(rows) > 20
    assert rows[0].exact > 0.99  # the first conv sees identical int8 inputs
    assert all(0.0 <= r.exact <= r.within_1 <= 1.0 for r in rows)


def test_ptq_calibration_reflects_photos_smaller_than_the_tile():
    from export.pipeline import _reflected_to

    image = np.random.default_rng(0).random((21, 40, 3)).astype(np.float32)
    grown = _reflected_to(image, 32)
    assert grown.shape == (32, 40, 3)
    assert np.array_equal(grown, np.pad(image, ((0, 11), (0, 0), (0, 0)), mode="reflect"))
    assert _reflected_to(image, 16) is image


def test_upsampling_by_concat_keeps_one_xnnpack_partition_and_the_same_values(exported):
    from ai_edge_litert.interpreter import Interpreter

    from edge_runtime.profiling import delegate_partitions

    _, out = exported
    qdq, contract = onnx.load(str(out / "tiny_qdq.onnx")), read_contract((out / "tiny_int8.tflite").read_bytes())
    x = np.random.default_rng(1).integers(-128, 128, (1, TILE, TILE, 3), dtype=np.int8)
    results, partitions = {}, {}
    for upsample in ("concat", "resize"):
        interp = Interpreter(model_content=tflite_int8_from_qdq(qdq, contract, upsample=upsample), num_threads=1)
        interp.allocate_tensors()
        ops = {o["op_name"] for o in interp._get_ops_details()}
        assert ("RESIZE_NEAREST_NEIGHBOR" in ops) == (upsample == "resize"), ops
        partitions[upsample] = delegate_partitions(interp)
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        results[upsample] = interp.get_tensor(interp.get_output_details()[0]["index"])
    assert np.array_equal(results["concat"], results["resize"])
    assert partitions["concat"] == 1 < partitions["resize"]
    # the shipped export is the concat one
    shipped = Interpreter(model_path=str(out / "tiny_int8.tflite"))
    assert "RESIZE_NEAREST_NEIGHBOR" not in {o["op_name"] for o in shipped._get_ops_details()}


def test_upsample_factor_that_concat_cannot_write_is_refused():
    import tensorflow as tf

    node = onnx.helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    translator = GraphTranslator(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), upsample="concat")
    x = tf.zeros([1, 4, 4, 2])
    with pytest.raises(UnsupportedGraphError, match="upsample 'resize'"):
        translator._resize(node, [x, None, np.array([1, 1, 2, 3], np.float32)])
    assert GraphTranslator(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), upsample="resize")._resize(
        node, [x, None, np.array([1, 1, 2, 3], np.float32)]).shape == (1, 8, 12, 2)
    with pytest.raises(ValueError, match="upsample must be one of"):
        GraphTranslator(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), upsample="bilinear")


def test_quant_sensitivity_leaves_each_point_out_once(exported, capsys):
    from export.verify import parity_tiles
    from train.checkpoint import load_restorer
    from train.quant import ActQuant

    script = load_script("quant_sensitivity")
    root, _ = exported
    model, _ = load_restorer(root / "qat" / "best.pt")
    tiles = {15.0: parity_tiles(None, TILE, 3, 2, "denoise", sigma=15.0)}
    float_db, quant_db, costs = script.sensitivity(model, tiles)
    assert len(costs) == sum(isinstance(m, ActQuant) for m in model.modules()) + 1
    gains = {c.name: c.gain_db[15.0] for c in costs}
    assert gains["q_in"] == 0.0  # the input is already on the pixel grid: quantizing it changes nothing
    assert script.WEIGHTS in gains and float_db[15.0] != quant_db[15.0]
    assert [c.gain_db[15.0] for c in costs] == sorted(gains.values(), reverse=True)

    assert script.main([str(root / "qat" / "best.pt"), "--count", "1", "--tile", str(TILE), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "sigma 15" in lines[0] and "sigma 50" in lines[0] and lines[3].startswith("gap") and len(lines) == 5 + 3
    with pytest.raises(SystemExit):
        script.main([str(root / "float" / "best.pt"), "--count", "1", "--tile", str(TILE)])
    assert "not a QAT checkpoint" in capsys.readouterr().err


def _export_subprocess(checkpoint, out, *extra):
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the tool's own default
    return subprocess.run([sys.executable, "-m", "export", str(checkpoint), "--out", str(out), "--name", "tiny",
                           "--tile", str(TILE), "--overlap", "4", *extra], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], env=env, timeout=600)


TF_LOG_LINE = re.compile(r"^[IWE]\d{4} [\d:. ]+\d+ \S+:\d+\]", re.MULTILINE)  # glog/absl: I0000 00:00:... x.cc:12]


def test_export_help_offers_verbose():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "export", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "-v, --verbose" in proc.stdout


def test_export_log_is_quiet_by_default_and_chatty_with_verbose(exported, tmp_path):
    root, _ = exported
    proc = _export_subprocess(root / "qat" / "best.pt", tmp_path / "quiet", "--ptq", "--ptq-samples", "2")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert not TF_LOG_LINE.search(err), err  # no TensorFlow INFO/WARNING lines
    for chatter in ("Reading SavedModel", "oneDNN", "absl::InitializeLog", "fully_quantize", "Replaced initializer",
                    "Assets written to", "torchvision is not installed"):
        assert chatter not in err, chatter
    # what is left: one line per file written and the scale audit
    assert err.count("wrote ") == 6 and "scale audit: " in err and len(err.splitlines()) == 7, err
    assert (tmp_path / "quiet" / "tiny_int8_ptq.tflite").is_file()

    verbose = _export_subprocess(root / "qat" / "best.pt", tmp_path / "verbose", "-v")
    assert verbose.returncode == 0
    assert TF_LOG_LINE.search(verbose.stderr) and "Reading SavedModel" in verbose.stderr
