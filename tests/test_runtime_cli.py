"""The edge-restore CLI end to end: outputs, batches, manifest, exit codes, errors, options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from edge_runtime import load_model
from edge_runtime.cli import main
from edge_runtime.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "edge_runtime" / "samples" / "sample_noisy.png"


def _image(path: Path, shape=(40, 52, 3), seed=0, **save) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if shape[2] == 1 else pixels).save(path, **save)
    return pixels


def _run(*args) -> int:
    return main([str(a) for a in args])


def test_single_file_default_output_and_psnr(tmp_path, int8_model, float_model, reference, capsys):
    pixels = _image(tmp_path / "photo.png", (45, 61, 3))
    assert _run("--model", int8_model, tmp_path / "photo.png") == 0
    out = tmp_path / "photo_restored.png"
    assert capsys.readouterr().out.strip() == str(out)
    restored = np.asarray(Image.open(out))
    assert restored.shape == pixels.shape and restored.dtype == np.uint8
    assert psnr(restored / 255.0, reference(pixels / 255.0)) >= 38.0
    assert np.array_equal(restored, load_model(int8_model).restore(pixels))  # CLI == API
    assert _run("--model", float_model, tmp_path / "photo.png", "-o", tmp_path / "f.png") == 0
    assert psnr(np.asarray(Image.open(tmp_path / "f.png")) / 255.0, reference(pixels / 255.0)) >= 45.0


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (33, 17, 3), (9, 10, 1)])
def test_tiny_and_odd_sizes(tmp_path, int8_model, shape):
    pixels = _image(tmp_path / "t.png", shape)
    assert _run("-m", int8_model, tmp_path / "t.png", "-q") == 0
    out = np.asarray(Image.open(tmp_path / "t_restored.png"))
    assert out.shape == pixels.squeeze(-1).shape if shape[2] == 1 else out.shape == shape


def test_output_file_and_directory(tmp_path, int8_model):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.jpg", seed=1)
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "custom.jpg", "--quality", "80") == 0
    assert Image.open(tmp_path / "custom.jpg").format == "JPEG"
    assert _run("-m", int8_model, tmp_path / "a.png", tmp_path / "b.jpg", "-o", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_restored.png", "b_restored.jpg"]
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", str(tmp_path / "one") + "/") == 0
    assert (tmp_path / "one" / "a_restored.png").is_file()


def test_jpeg_quality_option(tmp_path, int8_model):
    _image(tmp_path / "a.png", (64, 64, 3))
    _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "q30.jpg", "--quality", "30")
    _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "q95.jpg")
    assert (tmp_path / "q30.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size


def test_never_overwrites_input_and_refuses_existing_output(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png")
    original = (tmp_path / "a.png").read_bytes()
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "a.png") == 73
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "a.png", "--overwrite") == 73
    assert (tmp_path / "a.png").read_bytes() == original
    assert "refusing to overwrite input" in capsys.readouterr().err
    assert _run("-m", int8_model, tmp_path / "a.png") == 0
    first = (tmp_path / "a_restored.png").stat().st_mtime_ns
    assert _run("-m", int8_model, tmp_path / "a.png") == 73
    err = capsys.readouterr().err
    assert "edge-restore: error: output" in err and "--overwrite" in err
    assert (tmp_path / "a_restored.png").stat().st_mtime_ns == first
    assert _run("-m", int8_model, tmp_path / "a.png", "--overwrite") == 0


def test_directory_recursive_glob_and_skips(tmp_path, int8_model):
    src = tmp_path / "src"
    _image(src / "a.png")
    _image(src / "sub" / "b.png", seed=2)
    _image(src / ".hidden.png", seed=3)
    (src / "notes.txt").write_text("not an image")
    _image(src / "old_restored.png", seed=4)  # an earlier output: skipped
    assert _run("-m", int8_model, src, "-o", tmp_path / "flat", "-q") == 0
    assert sorted(p.name for p in (tmp_path / "flat").rglob("*")) == ["a_restored.png"]
    assert _run("-m", int8_model, src, "-r", "-o", tmp_path / "tree", "-q") == 0
    files = sorted(str(p.relative_to(tmp_path / "tree")) for p in (tmp_path / "tree").rglob("*.png"))
    assert files == ["a_restored.png", os.path.join("sub", "b_restored.png")]
    assert _run("-m", int8_model, str(src / "*.png"), "-o", tmp_path / "globbed", "-q") == 0
    assert sorted(p.name for p in (tmp_path / "globbed").iterdir()) == ["a_restored.png"]


def test_batch_continues_past_bad_files_with_manifest(tmp_path, int8_model, capsys):
    _image(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"definitely not a png")
    manifest = tmp_path / "run.json"
    code = _run("-m", int8_model, tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "gone.png", "--json", manifest)
    assert code == 2  # partial failure, mixed reasons (65 and 66)
    err = capsys.readouterr().err
    assert "1 of 3 restored, 2 failed" in err
    data = json.loads(manifest.read_text())
    files = {Path(f["input"]).name: f for f in data["files"]}
    assert files["good.png"]["status"] == "ok" and files["good.png"]["error"] is None
    assert files["good.png"]["output"] == str(tmp_path / "good_restored.png")
    assert isinstance(files["good.png"]["seconds"], float)
    assert files["bad.png"]["status"] == "error" and "not a readable image" in files["bad.png"]["error"]
    assert files["gone.png"]["status"] == "error" and "input not found" in files["gone.png"]["error"]
    assert data["summary"] == {"total": 3, "ok": 1, "failed": 2, "skipped": 0, "interrupted": 0, "pending": 0,
                               "seconds": data["summary"]["seconds"]}
    assert data["interrupted_by"] is None
    assert data["contract"]["tile_size"] == 32 and data["model"] == str(int8_model)
    assert (tmp_path / "good_restored.png").is_file() and not (tmp_path / "bad_restored.png").exists()


def test_batch_with_one_reason_exits_with_that_code(tmp_path, int8_model, capsys):
    assert _run("-m", int8_model, tmp_path / "x.png", tmp_path / "y.png") == 66
    _image(tmp_path / "ok.png")
    assert _run("-m", int8_model, tmp_path / "ok.png", tmp_path / "x.png") == 2  # partial
    (tmp_path / "empty").mkdir()
    assert _run("-m", int8_model, tmp_path / "empty") == 66
    assert "no images found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "setup,code,message",
    [
        ("missing", 66, "input not found"),
        ("garbage", 65, "not a readable image"),
        ("truncated", 65, "cannot decode image"),
        ("bomb", 65, "decompression bomb"),
    ],
)
def test_exit_codes_for_bad_inputs(tmp_path, int8_model, capsys, setup, code, message):
    path = tmp_path / "in.jpg"
    extra: list[str] = []
    if setup == "garbage":
        path.write_bytes(b"\x00\x01garbage")
    elif setup == "truncated":
        _image(path, (64, 64, 3))
        path.write_bytes(path.read_bytes()[:300])
    elif setup == "bomb":
        _image(path, (64, 64, 3))
        extra = ["--max-pixels", "1000"]
    assert _run("-m", int8_model, path, *extra) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-restore: error: ") and message in err[-1]
    assert not (tmp_path / "in_restored.jpg").exists()


@pytest.mark.parametrize(
    "model,message",
    [
        ("wrong_shape.tflite", "does not match the contract"),
        ("no_contract.tflite", "carries no 'edge_restore_contract' metadata"),
        ("weights.npz", "is not a TFLite (.tflite) or ONNX (.onnx) model"),
        ("absent.tflite", "model not found"),
    ],
)
def test_bad_models_exit_78(tmp_path, model_dir, capsys, model, message):
    _image(tmp_path / "a.png")
    assert _run("-m", model_dir / model, tmp_path / "a.png") == 78
    err = capsys.readouterr().err
    assert err.startswith("edge-restore: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "a_restored.png").exists()


def test_usage_errors_exit_1(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png")
    assert _run(tmp_path / "a.png") == 1  # no --model
    assert _run("-m", int8_model) == 1  # no input
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "x.unknown") == 1
    assert _run("-m", int8_model, tmp_path / "a.png", "--threads", "0") == 1
    assert _run("-m", int8_model, tmp_path / "a.png", "--bogus") == 1
    (tmp_path / "file.txt").write_text("")
    _image(tmp_path / "b.png")
    assert _run("-m", int8_model, tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "file.txt") == 1
    assert "edge-restore: error:" in capsys.readouterr().err


def test_edgetpu_device_errors_and_fallback(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png")
    assert _run("-m", int8_model, tmp_path / "a.png", "--device", "edgetpu") == 78
    err = capsys.readouterr().err
    assert "edge-restore: error: Edge TPU unavailable" in err and err.count("\n") == 1
    assert _run("-m", int8_model, tmp_path / "a.png", "--device", "edgetpu", "--cpu-fallback") == 0
    assert "edge-restore: warning: Edge TPU unavailable" in capsys.readouterr().err


def test_metadata_kept_through_cli(tmp_path, int8_model):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0112] = 6  # rotate 90 CW on display
    _image(tmp_path / "p.jpg", (20, 30, 3), exif=exif.tobytes(), icc_profile=icc, quality=95)
    assert _run("-m", int8_model, tmp_path / "p.jpg") == 0
    with Image.open(tmp_path / "p_restored.jpg") as out:
        assert out.size == (20, 30)  # orientation applied: width and height swapped
        assert out.info["icc_profile"] == icc
        assert out.getexif().get(0x010F) == "TestCam" and 0x0112 not in out.getexif()


def test_sixteen_bit_alpha_and_gray_through_cli(tmp_path, int8_model):
    from edge_runtime import png16

    rgba16 = np.random.default_rng(1).integers(0, 65536, (20, 24, 4), dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(png16.encode(rgba16))
    assert _run("-m", int8_model, tmp_path / "deep.png", "-q") == 0
    out, _ = png16.decode((tmp_path / "deep_restored.png").read_bytes())
    assert out.dtype == np.uint16 and out.shape == rgba16.shape
    assert np.array_equal(out[..., 3], rgba16[..., 3])  # alpha untouched
    assert len(np.unique(out[..., :3] % 257)) > 1  # genuinely 16-bit values, not 8-bit * 257

    gray = np.random.default_rng(2).integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert _run("-m", int8_model, tmp_path / "g.png", "-q") == 0
    with Image.open(tmp_path / "g_restored.png") as im:
        assert im.mode == "L"


def test_compare_writes_side_by_side(tmp_path, int8_model):
    # Too small for a label (the 36 x 11 px "before" plus padding): the plain halves, size 2W x H.
    pixels = _image(tmp_path / "a.png", (20, 30, 3))
    assert _run("-m", int8_model, tmp_path / "a.png", "--compare") == 0
    compare = np.asarray(Image.open(tmp_path / "a_compare.png"))
    restored = np.asarray(Image.open(tmp_path / "a_restored.png"))
    assert compare.shape == (20, 60, 3)
    assert np.array_equal(compare[:, :30], pixels) and np.array_equal(compare[:, 30:], restored)


def test_compare_image_is_labelled(tmp_path, int8_model):
    pixels = _image(tmp_path / "a.png", (48, 64, 3))
    assert _run("-m", int8_model, tmp_path / "a.png", "--compare", "-q") == 0
    compare = np.asarray(Image.open(tmp_path / "a_compare.png"))
    restored = np.asarray(Image.open(tmp_path / "a_restored.png"))
    plain = np.concatenate([pixels, restored], axis=1)
    assert compare.shape == plain.shape == (48, 128, 3)  # labels are drawn over, the size is unchanged
    changed = np.any(compare != plain, axis=2)
    # a label in the top-left corner of each half, the rest of the image untouched
    assert changed[:20, :48].sum() > 50 and changed[:20, 64:112].sum() > 50
    assert not changed[20:].any() and not changed[:, 48:64].any() and not changed[:, 112:].any()
    assert (compare[changed] == 255).any()  # white text


def test_benchmark_report(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png", (70, 70, 3))
    assert _run("-m", int8_model, tmp_path / "a.png", "--benchmark", "--threads", "1", "--json", tmp_path / "m.json") == 0
    err = capsys.readouterr().err
    assert "ms/tile" in err and "megapixels/s" in err and "peak memory" in err
    bench = json.loads((tmp_path / "m.json").read_text())["benchmark"]
    assert bench["tiles"] == 9 and bench["threads"] == 1 and bench["peak_memory_mib"] > 0


def test_tile_overlap_option(tmp_path, float_model, reference):
    pixels = _image(tmp_path / "a.png", (40, 50, 3))
    assert _run("-m", float_model, tmp_path / "a.png", "--tile-overlap", "8", "-o", tmp_path / "o8.png") == 0
    assert psnr(np.asarray(Image.open(tmp_path / "o8.png")) / 255.0, reference(pixels / 255.0)) >= 45.0
    assert _run("-m", float_model, tmp_path / "a.png", "--tile-overlap", "16", "-o", tmp_path / "x.png") == 1  # usage (issue 18)


def test_short_model_names_and_list_models(tmp_path, int8_model, model_dir, monkeypatch, capsys):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(int8_model, models / "denoise_int8.tflite")
    shutil.copy(model_dir / "no_contract.tflite", models / "plain.tflite")
    monkeypatch.setenv("EDGE_RESTORE_MODELS", str(models))
    _image(tmp_path / "a.png")
    assert _run("-m", "denoise", tmp_path / "a.png", "-q") == 0
    assert _run("-m", "nosuchmodel", tmp_path / "a.png") == 78
    capsys.readouterr()
    assert _run("--list-models") == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("denoise_int8"))
    assert "denoise" in line and " 32 " in line and "int8-qat" in line
    assert "plain" in out and "no 'edge_restore_contract'" in out


def test_onnx_model_through_cli(tmp_path, model_dir, reference):
    pixels = _image(tmp_path / "a.png", (30, 44, 3))
    assert _run("-m", model_dir / "float_dynamic.onnx", tmp_path / "a.png", "-q") == 0
    out = np.asarray(Image.open(tmp_path / "a_restored.png"))
    assert psnr(out / 255.0, reference(pixels / 255.0)) >= 45.0


def test_no_temp_files_left_behind(tmp_path, int8_model):
    _image(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    _run("-m", int8_model, tmp_path / "a.png", tmp_path / "bad.png", "--compare", "--json", tmp_path / "m.json", "-q")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.png", "a_compare.png", "a_restored.png", "bad.png", "m.json"]


def test_unwritable_output_exits_73(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", blocker / "out.png") == 73
    assert "edge-restore: error: " in capsys.readouterr().err


def test_help_explains_options_with_example(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--model", "--output", "--recursive", "--overwrite", "--quality", "--max-pixels", "--threads",
                   "--tile-overlap", "--device", "--cpu-fallback", "--compare", "--benchmark", "--json",
                   "--list-models", "exit codes", "examples:", "edge-restore --model denoise photo.jpg"):
        assert option in text


def test_console_script_on_the_bundled_sample(tmp_path, int8_model):
    assert SAMPLE.is_file() and SAMPLE.stat().st_size < 300_000
    exe = Path(sys.executable).parent / "edge-restore"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "edge_runtime.cli"]
    result = subprocess.run(
        [*cmd, "--model", str(int8_model), str(SAMPLE), "-o", str(tmp_path / "clean.png")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "INFO:" not in result.stderr
    with Image.open(tmp_path / "clean.png") as im:
        assert im.size == (256, 256) and im.mode == "RGB"


def test_png_level_option_and_default(tmp_path, int8_model):
    pixels = _image(tmp_path / "a.png", (64, 80, 3))
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "fast.png", "-q") == 0
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "small.png", "--png-level", "9", "-q") == 0
    fast, small = (np.asarray(Image.open(tmp_path / n)) for n in ("fast.png", "small.png"))
    assert np.array_equal(fast, small) and fast.shape == pixels.shape  # lossless either way
    assert (tmp_path / "small.png").stat().st_size <= (tmp_path / "fast.png").stat().st_size
    assert _run("-m", int8_model, tmp_path / "a.png", "--png-level", "10") == 1


def test_batch_writes_overlap_in_order_and_single_file_summary(tmp_path, int8_model, capsys):
    for i in range(4):
        _image(tmp_path / "in" / f"{i}.png", seed=i)
    (tmp_path / "in" / "2.png").write_bytes(b"not an image")  # a failure between two overlapped writes
    assert _run("-m", int8_model, tmp_path / "in", "-o", tmp_path / "out", "--json", tmp_path / "m.json") == 2
    files = json.loads((tmp_path / "m.json").read_text())["files"]
    assert [f["status"] for f in files] == ["ok", "ok", "error", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0_restored.png", "1_restored.png", "3_restored.png"]
    capsys.readouterr()
    assert _run("-m", int8_model, tmp_path / "in" / "0.png", "-o", tmp_path / "one.png") == 0
    err = capsys.readouterr().err
    assert "1 of 1 restored, 0 failed" in err and "MP/s" in err


def test_compare_name_follows_output_and_is_printed(tmp_path, int8_model, capsys):
    _image(tmp_path / "a.png", (20, 30, 3))
    assert _run("-m", int8_model, tmp_path / "a.png", "-o", tmp_path / "clean.png", "--compare") == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "clean.png"), str(tmp_path / "clean_compare.png")]
    assert Image.open(tmp_path / "clean_compare.png").size == (60, 20)


def test_a_reader_that_leaves_early_gets_no_traceback(monkeypatch, capsys):
    """`edge-restore --list-models | head -1`: the closed pipe ends the run quietly with 141."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone: every write now fails with EPIPE
    with os.fdopen(write_end, "w", buffering=1) as gone:
        monkeypatch.setattr("sys.stdout", gone)
        assert main(["--list-models"]) == 141
        monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err
