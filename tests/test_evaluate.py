"""edge-restore-eval: report files, identical inputs for every method, models, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train import evaluate as ev

skdata = pytest.importorskip("skimage.data")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_images(folder: Path, h: int = 64, w: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skdata.astronaut()[120 : 120 + h, 160 : 160 + w]).save(folder / "astronaut.png")
    Image.fromarray(skdata.coffee()[90 : 90 + h, 220 : 220 + w]).save(folder / "coffee.png")
    return folder


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    return _write_images(tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def awgn_report(clean_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    rc = ev.main(["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity,nlm-opencv,wavelet",
                  "--seed", "7", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_awgn_report_files_and_numbers(awgn_report):
    assert (awgn_report / "report.md").is_file()
    results = json.loads((awgn_report / "results.json").read_text())
    assert {"tool", "config", "images", "degradations", "files"} <= results.keys()
    assert results["images"] == ["astronaut.png", "coffee.png"]
    deg = results["degradations"]["awgn:25"]
    assert deg["methods"] == ["identity", "nlm-opencv", "wavelet"]
    assert {"wiener", "rl"}.isdisjoint(deg["methods"])
    for m in deg["methods"]:
        mean = deg["mean"][m]
        assert {"psnr", "ssim", "sec_per_mp", "seconds", "megapixels"} <= mean.keys()
        assert 0.0 < mean["ssim"] <= 1.0 and mean["sec_per_mp"] >= 0.0
    assert deg["mean"]["nlm-opencv"]["psnr"] > deg["mean"]["identity"]["psnr"] + 3.0
    assert deg["mean"]["wavelet"]["psnr"] > deg["mean"]["identity"]["psnr"]
    assert 19.0 < deg["mean"]["identity"]["psnr"] < 22.0  # sigma 25 noise is ~20.2 dB
    assert len(deg["per_image"]) == 2
    row = deg["per_image"][0]
    assert {"image", "sigma_given", "input_sha256", "psnr", "ssim", "seconds"} <= row.keys()
    assert row["sigma_given"] == pytest.approx(25.0, abs=0.01)
    assert "true sigma" in deg["side_info"]["nlm-opencv"]
    # The plot and the crops are real PNGs, and the report links them.
    plot = awgn_report / results["files"]["plot"]
    crops = awgn_report / results["files"]["crops"]["awgn:25"]
    assert plot.read_bytes()[:8] == PNG_MAGIC and crops.read_bytes()[:8] == PNG_MAGIC
    md = (awgn_report / "report.md").read_text()
    assert "| nlm-opencv |" in md and plot.name in md and crops.name in md and "true" in md


def test_same_seed_gives_identical_inputs(awgn_report, clean_dir, tmp_path):
    first = json.loads((awgn_report / "results.json").read_text())["degradations"]["awgn:25"]
    args = ["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity", "--no-progress"]
    assert ev.main(args + ["--seed", "7", "--out", str(tmp_path / "same")]) == 0
    assert ev.main(args + ["--seed", "8", "--out", str(tmp_path / "other")]) == 0
    same = json.loads((tmp_path / "same" / "results.json").read_text())["degradations"]["awgn:25"]
    other = json.loads((tmp_path / "other" / "results.json").read_text())["degradations"]["awgn:25"]
    for a, b, c in zip(first["per_image"], same["per_image"], other["per_image"]):
        assert a["input_sha256"] == b["input_sha256"] != c["input_sha256"]
        assert a["psnr"]["identity"] == b["psnr"]["identity"]


def test_every_method_sees_the_same_8bit_input(clean_dir):
    """Spy methods record what they are given: one identical, 8-bit input per image."""
    seen: dict[str, list[str]] = {"spy1": [], "spy2": []}

    def spy(name):
        def fn(img, side):
            u8 = np.round(img * 255)
            assert np.abs(img * 255 - u8).max() < 1e-3  # on the 8-bit grid
            seen[name].append(u8.astype(np.uint8).tobytes().hex()[:64] + str(u8.sum()))
            img[:] = 0.5  # a method that writes into its input must not affect the next one
            return img
        return ev.Method(name, fn, ev.KINDS, "spy")

    images = [(p.name, ev.load_image(p, 3)) for p in ev.list_images(clean_dir)]
    results, _ = ev.evaluate(images, [ev.parse_degradation("awgn:25")], ["identity"], [spy("spy1"), spy("spy2")],
                             seed=3, progress=False)
    # Warm-up calls see a 64x64 crop of the first input (the whole of it here), then one call per image.
    assert seen["spy1"] == seen["spy2"] and len(seen["spy1"]) == 3
    assert seen["spy1"][0] == seen["spy1"][1] != seen["spy1"][2]
    deg = results["awgn:25"]
    assert all(row["psnr"]["identity"] < 22.0 for row in deg["per_image"])


def test_motion_kernels_skip_denoisers_and_deconvolve(clean_dir, tmp_path):
    from train.degradations import gaussian_kernel, motion_kernel

    kdir = tmp_path / "kernels"
    kdir.mkdir()
    np.save(kdir / "k1.npy", motion_kernel(np.random.default_rng(1), 25))
    k2 = gaussian_kernel(2.0)
    Image.fromarray(np.round(k2 / k2.max() * 255).astype(np.uint8)).save(kdir / "k2.png")
    out = tmp_path / "rep"
    rc = ev.main(["--clean", str(clean_dir), "--degradation", f"motion:{kdir}", "--degradation", "awgn:15",
                  "--methods", "identity,wiener,rl,nlm-opencv", "--out", str(out), "--no-progress"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    motion = results["degradations"][f"motion:{kdir}"]
    assert motion["methods"] == ["identity", "wiener", "rl"]
    assert "nlm-opencv" in motion["skipped"]
    assert [r["kernel"] for r in motion["per_image"]] == ["k1", "k2"]  # kernels in turn
    assert motion["per_image"][0]["sigma_given"] == pytest.approx(np.hypot(2.55, np.sqrt(1 / 12)), abs=1e-6)
    assert motion["mean"]["wiener"]["psnr"] > motion["mean"]["identity"]["psnr"] + 0.5
    assert motion["mean"]["rl"]["psnr"] > motion["mean"]["identity"]["psnr"]
    awgn = results["degradations"]["awgn:15"]
    assert awgn["methods"] == ["identity", "nlm-opencv"] and {"wiener", "rl"} <= awgn["skipped"].keys()
    assert "true kernel" in (out / "report.md").read_text()


def test_bad_kernel_file_is_an_eval_error(tmp_path):
    """Kernel folders go through the runtime's load_kernel: its one-line reason, as an EvalError."""
    np.save(tmp_path / "a.npy", np.ones((3, 3)))
    np.save(tmp_path / "b.npy", np.array([[0.5, -0.1], [0.3, 0.3]]))
    with pytest.raises(ev.EvalError, match=r"b\.npy: blur kernel has negative values"):
        ev.load_kernels(tmp_path)
    (tmp_path / "b.npy").unlink()
    (tmp_path / "c.png").write_bytes(PNG_MAGIC + b"garbage")
    with pytest.raises(ev.EvalError, match=r"c\.png: unreadable blur kernel"):
        ev.load_kernels(tmp_path)


def test_default_methods_per_degradation():
    noise = ev.parse_degradation("poisson-gauss:0.01,2")
    blur = ev.parse_degradation("gauss-blur:1.5", blur_noise=0.0)
    assert [m.name for m in ev.resolve_methods(noise, None, [])[0]] == ["identity", "nlm-opencv", "nlm-skimage", "wavelet"]
    assert [m.name for m in ev.resolve_methods(blur, None, [])[0]] == ["identity", "wiener", "rl"]
    assert blur.sigma == 0.0 and blur.kernels[0][1].shape == (11, 11)


@pytest.mark.parametrize("spec", ["foo:1", "awgn", "awgn:abc", "awgn:-5", "poisson-gauss:0.01", "gauss-blur:0",
                                  "motion:/definitely/not/a/folder", "paired:/definitely/not/a/folder"])
def test_bad_spec_is_a_clear_error_with_exit_1(spec, clean_dir, tmp_path, capsys):
    rc = ev.main(["--clean", str(clean_dir), "--degradation", spec, "--out", str(tmp_path / "r"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("edge-restore-eval: error:") and "Traceback" not in err
    assert not (tmp_path / "r" / "results.json").exists()


def test_bad_method_model_and_folder_exit_1(clean_dir, tmp_path, capsys):
    base = ["--degradation", "awgn:25", "--out", str(tmp_path / "r"), "--no-progress"]
    assert ev.main(["--clean", str(clean_dir), "--methods", "identity,bm3d"] + base) == 1
    assert "bm3d" in capsys.readouterr().err
    assert ev.main(["--clean", str(tmp_path / "nope")] + base) == 1
    assert "not found" in capsys.readouterr().err
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    assert ev.main(["--clean", str(clean_dir), "--model", str(bogus)] + base) == 1
    assert "bogus.onnx" in capsys.readouterr().err
    assert ev.main(["--clean", str(clean_dir), "--model", str(tmp_path / "x.h5")] + base) == 1


def test_scores_are_the_shared_gaussian_ssim_and_psnr(awgn_report, tmp_path, capsys):
    from edge_runtime import metrics

    assert ev.ssim is metrics.ssim and ev.psnr is metrics.psnr
    results = json.loads((awgn_report / "results.json").read_text())
    row = results["degradations"]["awgn:25"]["per_image"][0]
    assert row["ssim"]["identity"] < row["ssim"]["nlm-opencv"] <= 1.0
    assert "11x11 Gaussian window" in (awgn_report / "report.md").read_text()
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(small / "strip.png")
    assert ev.main(["--clean", str(small), "--degradation", "awgn:25", "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    assert "too small to score" in capsys.readouterr().err


def test_torch_checkpoint_is_evaluated(tmp_path):
    torch = pytest.importorskip("torch")
    from train.checkpoint import save_checkpoint
    from train.model import build_restorer

    torch.manual_seed(0)
    model = build_restorer("tiny")
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, {"model_config": model.cfg.to_dict(), "model": model.state_dict(), "ema": None, "qat": False})
    clean = _write_images(tmp_path / "clean", h=62, w=50)  # not a multiple of the size multiple: padded, cropped back
    out = tmp_path / "rep"
    threads = torch.get_num_threads()
    rc = ev.main(["--clean", str(clean), "--degradation", "awgn:25", "--methods", "identity", "--model", str(ckpt),
                  "--model", str(ckpt), "--out", str(out), "--no-progress"])
    assert rc == 0
    assert torch.get_num_threads() == threads  # --threads applies to the model calls only
    results = json.loads((out / "results.json").read_text())
    deg = results["degradations"]["awgn:25"]
    assert deg["methods"] == ["identity", "tiny.pt", "tiny.pt#2"]
    assert "blind" in deg["side_info"]["tiny.pt"]
    for row in deg["per_image"]:
        assert np.isfinite(row["psnr"]["tiny.pt"]) and row["psnr"]["tiny.pt"] == row["psnr"]["tiny.pt#2"]
        assert 0.0 < row["ssim"]["tiny.pt"] <= 1.0
    # A freshly initialised restorer is a near-identity (global residual): close to the input's PSNR.
    assert abs(deg["mean"]["tiny.pt"]["psnr"] - deg["mean"]["identity"]["psnr"]) < 6.0


def test_module_entry_point_help():
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--degradation" in proc.stdout and "awgn:SIGMA" in proc.stdout


def test_onnx_model_runs_through_the_edge_runtime(tmp_path):
    """An exported .onnx gives the same scores as its .pt checkpoint (runtime tiling, same weights)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("edge_runtime.api")
    from edge_runtime.contract import ModelContract
    from train.checkpoint import save_checkpoint
    from train.model import build_restorer

    try:
        from export.onnx_export import export_onnx
    except ImportError as exc:
        pytest.skip(f"ONNX exporter not available: {exc}")
    torch.manual_seed(1)
    model = build_restorer("tiny")
    ckpt, onnx_path = tmp_path / "tiny.pt", tmp_path / "tiny.onnx"
    save_checkpoint(ckpt, {"model_config": model.cfg.to_dict(), "model": model.state_dict(), "ema": None, "qat": False})
    contract = ModelContract(task="denoise", channels=3, tile_size=64, size_multiple=model.cfg.size_multiple, overlap=16)
    export_onnx(model, onnx_path, contract)
    clean = _write_images(tmp_path / "clean")
    out = tmp_path / "rep"
    rc = ev.main(["--clean", str(clean), "--degradation", "awgn:25", "--methods", "identity", "--model", str(ckpt),
                  "--model", str(onnx_path), "--out", str(out), "--no-progress"])
    assert rc == 0
    deg = json.loads((out / "results.json").read_text())["degradations"]["awgn:25"]
    assert "edge_runtime" in deg["side_info"]["tiny.onnx"]
    for row in deg["per_image"]:  # one 64x64 tile per image: the runtime sees what torch sees
        assert row["psnr"]["tiny.onnx"] == pytest.approx(row["psnr"]["tiny.pt"], abs=0.05)


def test_held_out_uses_only_the_training_validation_slice(clean_dir, tmp_path, capsys):
    from train.data import is_held_out

    folder = tmp_path / "photos"
    folder.mkdir()
    names = [f"img{i}.png" for i in range(60)]
    held = [n for n in names if is_held_out(Path(n))]
    assert held  # crc32 picks about 1 in 20
    src = (clean_dir / "astronaut.png").read_bytes()
    for n in names[:20] + held[:1]:
        (folder / n).write_bytes(src)
    out = tmp_path / "r"
    assert ev.main(["--clean", str(folder), "--held-out", "--degradation", "awgn:25", "--methods", "identity",
                    "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["held_out"] is True and results["images"] == held[:1]
    per_image = json.dumps(results)
    assert held[0] in per_image and not any(n in per_image for n in names[:20] if n not in held)


def test_paired_reads_real_degraded_images_by_name(clean_dir, tmp_path, capsys):
    from train.data import load_image
    from train.degradations import blur, gaussian_kernel, quantize_8bit

    pairs = tmp_path / "blurred"
    pairs.mkdir()
    truth = {}
    for p in sorted(clean_dir.glob("*.png")):
        degraded = quantize_8bit(blur(load_image(p, 3), gaussian_kernel(1.5)))
        Image.fromarray(np.round(degraded * 255).astype(np.uint8)).save(pairs / p.name)
        truth[p.name] = float(ev.psnr(degraded, load_image(p, 3)))
    out = tmp_path / "rep"
    spec = f"paired:{pairs}"
    assert ev.main(["--clean", str(clean_dir), "--degradation", spec, "--methods", "identity,wiener,nlm-opencv",
                    "--out", str(out), "--no-progress"]) == 0
    paired = json.loads((out / "results.json").read_text())["degradations"][spec]
    assert paired["methods"] == ["identity"] and set(paired["skipped"]) == {"wiener", "nlm-opencv"}
    assert {r["image"]: r["psnr"]["identity"] for r in paired["per_image"]} == pytest.approx(truth, abs=1e-6)
    (pairs / "coffee.png").unlink()
    assert ev.main(["--clean", str(clean_dir), "--degradation", spec, "--out", str(tmp_path / "r2"), "--no-progress"]) == 1
    assert "no degraded image" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pairs / "coffee.png")
    assert ev.main(["--clean", str(clean_dir), "--degradation", spec, "--out", str(tmp_path / "r3"), "--no-progress"]) == 1
    assert "8x8" in capsys.readouterr().err


def test_real_pairs_scored_per_camera_with_reference_sigma(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "pairs"
    folder.mkdir()
    sigmas = {"CamA_scene1": 6.0, "CamA_scene2": 6.0, "CamB_scene1": 12.0}
    for stem, sigma in sigmas.items():
        ref = skdata.astronaut()[100:164, 150:214]
        noisy = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(ref).save(folder / f"{stem}_mean.png")
        Image.fromarray(noisy).save(folder / f"{stem}_real.png")
    out = tmp_path / "report"
    rc = ev.main(["--clean", str(folder), "--degradation", "pairs:_real,_mean", "--methods", "identity,nlm-opencv",
                  "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    results = json.loads((out / "results.json").read_text())
    deg = results["degradations"]["pairs:_real,_mean"]
    assert [r["image"] for r in deg["per_image"]] == [f"{s}_mean.png" for s in sigmas]  # references only
    given = {r["image"][:11]: r["sigma_given"] for r in deg["per_image"]}
    assert abs(given["CamA_scene1"] - 6.0) < 0.5 and abs(given["CamB_scene1"] - 12.0) < 0.8
    assert deg["per_group"]["CamA"]["images"] == 2 and deg["per_group"]["CamB"]["images"] == 1
    assert deg["per_group"]["CamB"]["nlm-opencv"] > deg["per_group"]["CamB"]["identity"] + 2
    assert "[CamA, 2 pairs]" in text


def test_real_pairs_spec_errors(tmp_path, capsys):
    folder = _write_images(tmp_path / "c")
    assert ev.main(["--clean", str(folder), "--degradation", "pairs:_real", "--out", str(tmp_path / "r")]) == 1
    assert "pairs:NOISY,CLEAN" in capsys.readouterr().err
    assert ev.main(["--clean", str(folder), "--degradation", "pairs:_real,_mean", "--out", str(tmp_path / "r2"),
                    "--no-progress"]) == 1
    assert "no reference image" in capsys.readouterr().err


def test_model_row_names_tell_equal_file_names_apart():
    assert ev._model_names(["runs/a/best.pt", "runs/b/best.pt", "x.onnx"]) == ["a/best.pt", "b/best.pt", "x.onnx"]
    assert ev._model_names(["runs/a/best.pt", "old/runs/a/best.pt"]) == ["runs/a/best.pt", "old/runs/a/best.pt"]
    assert ev._model_names(["m/best.pt", "m/best.pt"]) == ["best.pt", "best.pt#2"]  # the same file twice
    assert ev._model_names(["wiener"]) == ["wiener#2"]  # not confused with the classic method


def _short_name_models(tmp_path, int8_model, monkeypatch) -> Path:
    models = tmp_path / "models"
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        shutil.copy(int8_model, tmp_path / "runs" / run / "denoise_int8.tflite")
    models.mkdir()
    shutil.copy(int8_model, models / "denoise_int8.tflite")
    monkeypatch.setenv("EDGE_RESTORE_MODELS", str(models))
    return models


def test_short_model_name_and_folder_row_names(tmp_path, clean_dir, int8_model, monkeypatch):
    models = _short_name_models(tmp_path, int8_model, monkeypatch)
    out = tmp_path / "rep"
    rc = ev.main(["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity", "--model", "denoise",
                  "--model", str(tmp_path / "runs/a/denoise_int8.tflite"), "--model", str(tmp_path / "runs/b/denoise_int8.tflite"),
                  "--out", str(out), "--no-progress"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["models"][0] == str(models / "denoise_int8.tflite")  # resolved like edge-restore -m denoise
    deg = results["degradations"]["awgn:25"]
    assert deg["methods"] == ["identity", "models/denoise_int8.tflite", "a/denoise_int8.tflite", "b/denoise_int8.tflite"]
    psnrs = {deg["mean"][m]["psnr"] for m in deg["methods"][1:]}
    assert len(psnrs) == 1  # three copies of one model: one score
    assert "| a/denoise_int8.tflite |" in (out / "report.md").read_text()


def test_unknown_short_model_name_is_one_line(tmp_path, clean_dir, monkeypatch, capsys):
    monkeypatch.setenv("EDGE_RESTORE_MODELS", str(tmp_path))
    rc = ev.main(["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity", "--model", "nosuch",
                  "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "--model nosuch: model not found" in err and "nosuch_int8.tflite" in err
    assert not (tmp_path / "r").exists()


def test_report_folder_must_be_fresh_or_overwritten(tmp_path, clean_dir, capsys):
    out = tmp_path / "rep"
    args = ["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity", "--no-progress", "--out", str(out)]
    assert ev.main([*args[:3], "awgn:50", *args[4:]]) == 0
    assert (out / "crops_awgn_50.png").is_file()
    before = (out / "results.json").read_text()
    assert ev.main(args) == 1  # a second run into the same folder is refused, nothing touched
    assert "not empty" in capsys.readouterr().err and (out / "results.json").read_text() == before
    assert ev.main([*args, "--overwrite"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["degradations"]) == ["awgn:25"]
    assert not (out / "crops_awgn_50.png").exists()  # the stale crops of the earlier report are gone
    assert sorted(p.name for p in out.iterdir()) == sorted(["crops_awgn_25.png", "quality_vs_speed.png", "report.md",
                                                             "report.html", "results.json"])
    (out / "notes.txt").write_text("mine")
    assert ev.main([*args, "--overwrite"]) == 1  # a file that no report wrote is never deleted
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert (out / "report.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ev.main([*args[:-1], str(empty)]) == 0  # an existing empty folder is fresh
    (tmp_path / "file").write_text("x")
    assert ev.main([*args[:-1], str(tmp_path / "file"), "--overwrite"]) == 1


def test_html_report_next_to_the_markdown(awgn_report):
    results = json.loads((awgn_report / "results.json").read_text())
    assert results["files"]["html"] == "report.html"
    page = (awgn_report / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>") and '<meta charset="utf-8">' in page
    assert "<h1>edge-restore evaluation</h1>" in page and "<h2><code>awgn:25</code>: additive" in page
    assert '<td>nlm-opencv</td><td class="num">' in page  # summary table, numbers right-aligned
    deg = results["degradations"]["awgn:25"]
    assert f'{deg["mean"]["wavelet"]["psnr"]:.2f}' in page
    # images are relative links to the files beside it; nothing is fetched from elsewhere
    assert f'<img src="{results["files"]["plot"]}"' in page and f'<img src="{results["files"]["crops"]["awgn:25"]}"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_html_escapes_and_formats():
    from train.report import markdown_to_html

    page = markdown_to_html("# T <x>\n\n- **bold** and *it* & `a<b*c*`\n\n| m | v |\n|---|---:|\n| *ref* | 1 |\n\n"
                            '![alt "q"](crops_a.png)\n\nvariance 0.01 * x + 2')
    assert "<h1>T &lt;x&gt;</h1>" in page
    assert "<li><strong>bold</strong> and <em>it</em> &amp; <code>a&lt;b*c*</code></li>" in page
    assert '<tr><th>m</th><th class="num">v</th></tr>' in page and '<tr><td><em>ref</em></td><td class="num">1</td></tr>' in page
    assert '<img src="crops_a.png" alt="alt &quot;q&quot;">' in page
    assert "<p>variance 0.01 * x + 2</p>" in page


def test_blind_settings_reach_the_pnp_est_rows_and_are_recorded(clean_dir, tmp_path, capsys):
    from dataclasses import asdict

    from edge_runtime.deblur import BlindSettings
    from edge_runtime.kernels import linear_motion_kernel

    kdir = tmp_path / "kernels"
    kdir.mkdir()
    np.save(kdir / "m9.npy", linear_motion_kernel(9, 0))
    runs = {}
    for name, extra in (("default", []), ("no-floor", ["--blind-sigma-floor", "0", "--blind-crop", "64"]),
                        ("loose", ["--blind-setting", "threshold=0.01", "--blind-setting", "min_component=0"]),
                        ("no-blur", ["--blind-setting", "no_blur_peak=0.01"])):
        out = tmp_path / name
        assert ev.main(["--clean", str(clean_dir), "--degradation", f"motion:{kdir}", "--methods", "identity,pnp-est",
                        "--out", str(out), "--no-progress", *extra]) == 0
        runs[name] = json.loads((out / "results.json").read_text())
    default = asdict(BlindSettings())
    assert runs["default"]["config"]["blind"] == default
    assert runs["no-floor"]["config"]["blind"] == {**default, "crop": 64, "sigma_floor": 0.0}
    assert runs["loose"]["config"]["blind"]["estimator"] == {**default["estimator"], "threshold": 0.01, "min_component": 0.0}
    scores = [r["degradations"][f"motion:{kdir}"]["mean"] for r in runs.values()]
    est = [next(v["psnr"] for k, v in s.items() if k.startswith("pnp-est")) for s in scores]
    assert est[0] != est[1]  # 1% noise is below the default floor: the schedule differs
    assert est[0] != est[2]  # the estimator's settings reach the estimate
    # each image's row keeps the kept kernel's peak and whether it was taken for no blur: a 9 px
    # motion's estimate peaks well below the default check, and above a check moved to 0.01
    for name, no_blur in (("default", False), ("no-blur", True)):
        rows = runs[name]["degradations"][f"motion:{kdir}"]["per_image"]
        notes = [next(v for k, v in r["notes"].items() if k.startswith("pnp-est")) for r in rows]
        assert all(0.01 < n["kernel_peak"] < 0.4 and n["no_blur"] is no_blur for n in notes), notes
    assert est[3] != est[0]
    assert f"no blur found on 0 of {len(rows)} images" in capsys.readouterr().out
    base = ["--clean", str(clean_dir), "--degradation", f"motion:{kdir}", "--out", str(tmp_path / "bad"), "--no-progress"]
    assert ev.main(base + ["--blind-crop", "10"]) == 1
    assert "--blind-crop must be at least 64" in capsys.readouterr().err
    assert ev.main(base + ["--blind-sigma-floor", "-1"]) == 1
    assert "--blind-sigma-floor" in capsys.readouterr().err
    assert ev.main(base + ["--blind-setting", "threshold=2"]) == 1
    assert "--blind-setting: estimate: setting threshold must be in [0, 1)" in capsys.readouterr().err


def test_strength_and_ensemble_rows_run_the_model_variants(clean_dir, tmp_path, capsys):
    model = Path(__file__).resolve().parents[1] / "models" / "denoise_int8.tflite"
    out = tmp_path / "ens"
    assert ev.main(["--clean", str(clean_dir), "--degradation", "awgn:25", "--methods", "identity", "--model", str(model),
                    "--ensembles", "1,4,1+shuffle", "--strengths", "0.5", "--out", str(out), "--no-progress"]) == 0
    deg = json.loads((out / "results.json").read_text())["degradations"]["awgn:25"]
    assert deg["methods"] == ["identity", "denoise_int8.tflite", "denoise_int8.tflite@0.5", "denoise_int8.tflite@x4",
                              "denoise_int8.tflite@x1+shuffle"]
    mean = {m: deg["mean"][m]["psnr"] for m in deg["methods"]}
    assert mean["identity"] < mean["denoise_int8.tflite@0.5"] < mean["denoise_int8.tflite"]  # half the correction
    assert mean["denoise_int8.tflite@x4"] > mean["denoise_int8.tflite"]  # views average out model errors
    assert mean["denoise_int8.tflite@x1+shuffle"] < mean["denoise_int8.tflite"]  # white noise: the shuffle hurts
    assert ev.parse_ensembles(" 2, 8+shuffle ,") == [(2, False), (8, True)]
    for bad in ("3", "x", "4+shufle"):
        with pytest.raises(ev.EvalError, match="--ensembles item"):
            ev.parse_ensembles(bad)
