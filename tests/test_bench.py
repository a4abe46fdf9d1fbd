"""`python -m edge_runtime.bench` on the fixture models: JSON structure, ratios, skips, exit codes.

No timing is asserted (machines are noisy): only that every ratio, fraction and PASS/FAIL is
computed from the numbers the same run measured. The fixtures (tests/data) stand in for an
exported family: int8.tflite -> fx_int8.tflite, float32.tflite -> fx_float.tflite,
float_static.onnx -> fx_float.onnx; the other files are missing on purpose (skipped rows).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge_runtime import bench, profiling

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

pytest.importorskip("ai_edge_litert", reason="the benchmark runs TFLite models")


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("bench")
    models = root / "models"
    models.mkdir()
    for src, dst in (("int8.tflite", "fx_int8.tflite"), ("float32.tflite", "fx_float.tflite"),
                     ("float_static.onnx", "fx_float.onnx")):
        (models / dst).write_bytes((model_dir / src).read_bytes())
    images = root / "images"
    images.mkdir()
    yy, xx = np.mgrid[0:48, 0:56]
    clean = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 2) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(clean).save(images / "ramp.png")
    return root, models, images


@pytest.fixture(scope="module")
def bench_run(bench_setup):
    """One in-process run (rows still run in subprocesses), with OpenCV reported as missing."""
    root, models, images = bench_setup
    out = root / "out.json"
    real = bench.has_package
    bench.has_package = lambda name: False if name == "cv2" else real(name)
    import io
    from contextlib import redirect_stderr, redirect_stdout

    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            code = bench.main([
                "--models-dir", str(models), "--name", "fx", "--images", str(images), "--threads", "1",
                "--repeats", "1", "--json", str(out), "--no-python-profile",
            ])
    finally:
        bench.has_package = real
    return code, json.loads(out.read_text()), stdout.getvalue()


def test_exit_code_follows_the_targets(bench_run):
    code, result, _ = bench_run
    statuses = [t["status"] for t in result["summary"]["targets"]]
    assert set(statuses) <= {"PASS", "FAIL", "SKIP"}
    assert len(statuses) == 4
    assert code == (bench.EXIT_FAIL if "FAIL" in statuses else bench.EXIT_OK)


def test_json_structure(bench_run):
    _, result, _ = bench_run
    assert set(result) >= {"meta", "noisy_psnr", "rows", "limit", "summary", "tile_sweep", "scaling"}
    assert "what_if" not in result  # the exporter splits hard-swish itself (export/tflite_rewrite.py)
    assert list(result["rows"]) == list(bench.ROW_KEYS)
    assert result["meta"]["threads"] == 1 and result["meta"]["images"] == 1
    assert math.isclose(result["meta"]["megapixels"], 48 * 56 / 1e6)
    for key in ("int8", "float", "onnx-float", "wiener"):
        row = result["rows"][key]
        assert row["status"] == "ok", (key, row)
        assert row["megapixels_per_second"] > 0 and row["peak_rss_mib"] > 0
        assert len(row["seconds"]) == 1
    for key in ("int8", "float", "onnx-float"):
        assert 0 <= result["rows"][key]["psnr"] < 100
    assert "psnr" not in result["rows"]["wiener"]  # a deblurring baseline: speed only
    ref = result["rows"]["int8"]
    assert ref["graph_macs_per_tile"] == 32 * 32 * 3 * 9 * 3  # the fixture: one 3x3 conv, 3 -> 3 channels
    assert ref["tiles_per_pass"] > 0 and ref["tile_size"] == 32
    det = ref["details"]
    assert set(det) >= {"tiling", "buffer_reuse", "tile_breakdown", "op_profile"}
    assert det["op_profile"]["ops"][0]["op"] == "CONV_2D"
    assert det["tiling"]["tiles_with_overlap"] >= det["tiling"]["tiles_without_overlap"]
    tb = det["tile_breakdown"]
    assert math.isclose(tb["python_ms_per_tile"], tb["backend_python_ms_per_tile"] + tb["tiler_python_ms_per_tile"]) \
        or tb["tiler_python_ms_per_tile"] == 0
    assert math.isclose(tb["python_share"], tb["python_ms_per_tile"] / (tb["python_ms_per_tile"] + tb["invoke_ms_per_tile"]))
    assert len(result["limit"]["measurements"]) == 2  # before and after the rows, best kept
    assert result["limit"]["status"] == "ok"
    assert set(result["limit"]["models"]) == {"int8_conv3x3_128.tflite", "int8_conv1x1_128.tflite", "int8_dwconv3x3_128.tflite"}


def test_skipped_rows_carry_a_reason(bench_run):
    _, result, stdout = bench_run
    rows = result["rows"]
    for key in ("fp16", "int8-ptq", "onnx-qdq"):
        assert rows[key]["status"] == "skipped" and "not found" in rows[key]["reason"]
    assert rows["torch"]["status"] == "skipped" and "--checkpoint" in rows["torch"]["reason"]
    assert rows["nlm"]["status"] == "skipped" and rows["nlm"]["reason"] == "cv2 is not installed"
    assert "skipped: cv2 is not installed" in stdout
    nlm_target = next(t for t in result["summary"]["targets"] if "NLM" in t["target"])
    assert nlm_target["status"] == "SKIP"


def test_ratios_are_computed_from_the_measured_numbers(bench_run):
    _, result, _ = bench_run
    rows = result["rows"]
    ref = rows["int8"]
    for key, row in rows.items():
        if row["status"] != "ok":
            assert "int8_speedup" not in row
            continue
        assert math.isclose(row["megapixels_per_second"], row["megapixels_per_pass"] / min(row["seconds"]))
        assert math.isclose(row["int8_speedup"], ref["megapixels_per_second"] / row["megapixels_per_second"])
        assert math.isclose(row["memory_vs_int8"], row["peak_rss_mib"] / ref["peak_rss_mib"])
        if "psnr" in row:
            assert math.isclose(row["int8_psnr_gain_db"], ref["psnr"] - row["psnr"])
    summary = result["summary"]
    macs = summary["macs"]
    assert macs["source"].startswith("TFLite graph") and macs["macs_per_pixel"] == 81
    roof = summary["roofline"]
    assert math.isclose(roof["achieved_gmacs_per_s"], 81 * ref["megapixels_per_second"] / 1e3)
    assert math.isclose(roof["limit_gmacs_per_s"], result["limit"]["gmacs_per_s"])
    assert math.isclose(roof["achieved_fraction"], roof["achieved_gmacs_per_s"] / roof["limit_gmacs_per_s"])
    lim = result["limit"]["models"]["int8_conv3x3_128.tflite"]
    assert math.isclose(lim["gmacs_per_s"], lim["macs_per_run"] / (lim["ms_min"] / 1e3) / 1e9)
    float_target = next(t for t in summary["targets"] if "float" in t["target"])
    assert math.isclose(float_target["value"], rows["float"]["int8_speedup"])
    assert float_target["status"] == ("PASS" if float_target["value"] >= 2.0 else "FAIL")
    tiling = ref["details"]["tiling"]
    t, o = tiling["tile"], tiling["overlap"]
    expect = (tiling["seconds_with_overlap"] / tiling["tiles_with_overlap"] / (t - o) ** 2) / (
        tiling["seconds_without_overlap"] / tiling["tiles_without_overlap"] / t**2) - 1
    assert math.isclose(tiling["steady_state_overhead"], expect)
    for board in summary["boards"]:
        factor = (t / (t - o)) ** 2
        assert math.isclose(board["estimated_mpix_per_s_low"], board["gmacs_low"] * 1e3 / (81 * factor))


def test_usage_errors_exit_2(bench_setup, tmp_path, capsys):
    root, models, images = bench_setup
    assert bench.main(["--models-dir", str(tmp_path), "--name", "fx"]) == bench.EXIT_USAGE
    assert "no INT8 model" in capsys.readouterr().err
    assert bench.main(["--models-dir", str(models), "--name", "fx", "--rows", "int8,bogus"]) == bench.EXIT_USAGE
    assert "unknown row" in capsys.readouterr().err


def test_command_line_exit_code(bench_setup, tmp_path):
    """The module entry point, rows restricted, without the limit and profiles."""
    root, models, images = bench_setup
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge_runtime.bench", "--models-dir", str(models), "--name", "fx", "--images",
         str(images), "--threads", "1", "--repeats", "1", "--rows", "int8,float", "--no-limit",
         "--no-op-profile", "--no-python-profile", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    result = json.loads(out.read_text())
    failed = any(t["status"] == "FAIL" for t in result["summary"]["targets"])
    assert proc.returncode == (1 if failed else 0), proc.stderr
    assert "int8 >= 2x float TFLite" in proc.stdout
    assert list(result["rows"]) == ["int8", "float"]


def test_runtime_imports_stay_light():
    code = (
        "import sys, edge_runtime.bench, edge_runtime.profiling\n"
        "heavy = [m for m in ('torch', 'tensorflow', 'cv2', 'onnxruntime', 'scipy', 'skimage') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_op_macs():
    assert profiling.op_macs("CONV_2D", [(1, 8, 8, 4), (16, 3, 3, 4), (16,)], [(1, 8, 8, 16)]) == 8 * 8 * 16 * 9 * 4
    assert profiling.op_macs("DEPTHWISE_CONV_2D", [(1, 8, 8, 4), (1, 3, 3, 4)], [(1, 8, 8, 4)]) == 8 * 8 * 4 * 9
    assert profiling.op_macs("FULLY_CONNECTED", [(1, 10), (5, 10)], [(1, 5)]) == 50
    assert profiling.op_macs("ADD", [(1, 4, 4, 2)] * 2, [(1, 4, 4, 2)]) == 0


def test_synthetic_image_and_noise():
    img = bench.synthetic_image(1.0)
    assert img.dtype == np.uint8 and img.shape[2] == 3
    assert abs(img.shape[0] * img.shape[1] - 1e6) < 2e3 and abs(img.shape[1] / img.shape[0] - 4 / 3) < 0.01
    clean = np.full((32, 32, 3), 128, np.uint8)
    a, b = bench.make_noisy(clean, 25, 0), bench.make_noisy(clean, 25, 0)
    assert np.array_equal(a, b) and 20 < float(np.std(a.astype(float))) < 30


def test_rounds_and_limits_keep_the_best():
    a = {"status": "ok", "megapixels_per_second": 2.0, "details": {"x": 1}}
    b = {"status": "ok", "megapixels_per_second": 3.0}
    merged = bench.merge_rounds(bench.merge_rounds(None, a), b)
    assert merged["megapixels_per_second"] == 3.0 and merged["details"] == {"x": 1}
    assert merged["rounds_megapixels_per_second"] == [2.0, 3.0]
    lim = lambda g: {"status": "ok", "limit_model": "m", "gmacs_per_s": g, "models": {"m": {"gmacs_per_s": g}}}  # noqa: E731
    assert bench.merge_limits(lim(5.0), lim(7.0))["gmacs_per_s"] == 7.0
    assert bench.merge_limits(None, {"status": "skipped", "reason": "r"})["status"] == "skipped"


def test_overlap_sweep_runs_the_int8_file_at_each_overlap(bench_setup, tmp_path, capsys):
    root, models, images = bench_setup
    out = tmp_path / "ov.json"
    assert bench.main(["--models-dir", str(models), "--name", "fx", "--images", str(images), "--threads", "1",
                       "--repeats", "1", "--rows", "int8", "--no-limit", "--no-op-profile", "--no-python-profile",
                       "--overlaps", "0,4", "--json", str(out)]) in (bench.EXIT_OK, bench.EXIT_FAIL)
    sweep = json.loads(out.read_text())["tile_sweep"]
    assert [r["overlap"] for r in sweep] == [0, 4] and all(r["status"] == "ok" for r in sweep)
    assert [r["path"].rsplit(" @", 1)[1] for r in sweep] == ["0", "4"]
    # 48x56 in 32-px tiles: 2x2 tiles at either overlap, so the steady rate counts (32-4)^2 useful pixels
    assert all(r["tiles_per_pass"] == 4 and r["steady_megapixels_per_second"] > 0 and 0 < r["psnr"] < 99 for r in sweep)
    assert "fx_int8.tflite @4" in capsys.readouterr().out
    for bad in ("-1", "8,x"):
        assert bench.main(["--models-dir", str(models), "--name", "fx", "--overlaps", bad]) == bench.EXIT_USAGE
        assert "--overlaps" in capsys.readouterr().err


def test_process_mode_reports_both_rates(int8_model, tmp_path, capsys):
    out = tmp_path / "process.json"
    code = bench.main(["--process", "--process-model", str(int8_model), "--single-mp", "0.05", "--batch-count", "2",
                       "--batch-mp", "0.05", "--repeats", "1", "--threads", "1", "--json", str(out)])
    text = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert [r["key"] for r in results] == ["single", "batch"] and results[1]["files"] == 2
    for r in results:
        assert r["model_only_mps"] > 0 and r["whole_process_mps"] > 0
        assert r["ratio"] == pytest.approx(r["whole_process_mps"] / r["model_only_mps"], abs=2e-3)
        assert r["passed"] == (r["ratio"] >= r["target"]) and f"{r['target']:.0%}" in text
    assert code == (0 if all(r["passed"] for r in results) else 1)
    assert bench.main(["--process", "--process-scenarios", "nope"]) == 2
