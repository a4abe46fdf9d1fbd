"""`edge-restore --classic`: model-free Wiener / Richardson-Lucy / NLM through the CLI, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime.cli import main
from edge_runtime.metrics import psnr

skdata = pytest.importorskip("skimage.data")
pytest.importorskip("scipy")  # train.degradations blurs with scipy.signal.fftconvolve
from train.degradations import add_gaussian_noise, blur, motion_kernel, quantize_8bit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KERNEL = motion_kernel(np.random.default_rng(1), 25)


def _run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return skdata.coffee()[60:188, 200:328]  # 128x128 RGB uint8


@pytest.fixture
def blurred(tmp_path, clean) -> tuple[Path, Path]:
    """(photo.png, k.npy): `clean` blurred with KERNEL, 1% Gaussian noise, rounded to 8 bits as a saved photo."""
    degraded = quantize_8bit(add_gaussian_noise(blur(clean / 255.0, KERNEL), 2.55, np.random.default_rng(3)))
    photo, kernel = tmp_path / "photo.png", tmp_path / "k.npy"
    Image.fromarray(np.rint(degraded * 255).astype(np.uint8)).save(photo)
    np.save(kernel, KERNEL)
    return photo, kernel


def _error_line(err: str) -> str:
    """The single `edge-restore: error:` line of stderr (usage lines may precede it)."""
    errors = [ln for ln in err.splitlines() if ln.startswith("edge-restore: error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


def test_wiener_deblurs_and_leaves_the_input_alone(blurred, clean, tmp_path, capsys):
    photo, kernel = blurred
    before = photo.read_bytes()
    out = tmp_path / "out.png"
    assert _run("--classic", "wiener", "--kernel", kernel, "--noise-sigma", "2.55", photo, "-o", out) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert photo.read_bytes() == before
    restored = np.asarray(Image.open(out))
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    gain = psnr(restored, clean, 255) - psnr(np.asarray(Image.open(photo)), clean, 255)
    assert gain > 2.0, gain  # measured: 27.6 -> 31.9 dB


def test_rl_batch_on_a_folder_with_png_kernel(blurred, clean, tmp_path):
    photo, _ = blurred
    Image.fromarray(np.rint(KERNEL / KERNEL.max() * 255).astype(np.uint8)).save(tmp_path / "shake.png")
    (tmp_path / "photos").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "photos" / name).write_bytes(photo.read_bytes())
    code = _run("--classic", "rl", "--kernel", tmp_path / "shake.png", "--rl-iterations", "15", tmp_path / "photos",
                "-o", tmp_path / "restored", "-q")
    assert code == 0
    outs = sorted((tmp_path / "restored").iterdir())
    assert [p.name for p in outs] == ["a_restored.png", "b_restored.png"]
    assert psnr(np.asarray(Image.open(outs[0])), clean, 255) > psnr(np.asarray(Image.open(photo)), clean, 255) + 2.0


def test_manifest_benchmark_and_estimated_sigma(blurred, tmp_path, capsys):
    photo, kernel = blurred
    manifest = tmp_path / "run.json"
    assert _run("--classic", "wiener", "--kernel", kernel, photo, "--json", manifest, "--benchmark") == 0
    err = capsys.readouterr().err
    assert "estimated noise sigma" in err and "--noise-sigma" in err
    assert "benchmark: classic:wiener" in err and "megapixels/s" in err and "peak memory" in err
    data = json.loads(manifest.read_text())
    assert data["model"] == "classic:wiener" and data["contract"] is None
    assert data["classic"] == {"method": "wiener", "kernel": str(kernel), "kernel_shape": list(KERNEL.shape),
                               "noise_sigma": None, "rl_iterations": None}
    (entry,) = data["files"]
    assert entry["status"] == "ok" and 1.5 < entry["noise_sigma"] < 4.5  # true: 2.57 (1% + 8-bit rounding)
    assert data["benchmark"]["backend"] == "classic:wiener" and data["benchmark"]["megapixels"] > 0


def test_rgba_input_keeps_alpha_bit_exact(blurred, tmp_path):
    photo, kernel = blurred
    rgb = np.asarray(Image.open(photo))
    alpha = (np.arange(rgb.shape[0] * rgb.shape[1]) % 256).astype(np.uint8).reshape(rgb.shape[:2])
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    assert _run("--classic", "wiener", "--kernel", kernel, "--noise-sigma", "2.55", tmp_path / "rgba.png", "-q") == 0
    with Image.open(tmp_path / "rgba_restored.png") as im:
        assert im.mode == "RGBA"
        out = np.asarray(im)
    assert np.array_equal(out[..., 3], alpha)
    assert not np.array_equal(out[..., :3], rgb)  # the colour was restored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classic", "wiener"], "--classic wiener needs the blur kernel"),
        (["--classic", "wiener", "--kernel", "k.npy", "--model", "denoise"], "--classic and --model exclude each other"),
        ([], "--model or --classic is required"),
        (["--classic", "nlm", "--kernel", "k.npy"], "--kernel goes with --classic wiener or rl"),
        (["--model", "denoise", "--noise-sigma", "5"], "--noise-sigma goes with --kernel (deconvolution) or --classic"),
        (["--model", "denoise", "--iterations", "5"], "--iterations goes with --kernel"),
        (["--model", "denoise", "--kernel", "motion:9,0", "--strength", "0.5"], "--strength scales a denoiser"),
        (["--classic", "wiener", "--kernel", "estimate"], "blind estimation) goes with a denoiser"),
        (["--classic", "rl", "--kernel", "k.npy", "--noise-sigma", "5"], "no effect with --classic rl"),
        (["--classic", "wiener", "--kernel", "k.npy", "--device", "edgetpu"], "--classic runs on the CPU"),
        (["--classic", "wiener", "--kernel", "k.npy", "--tile-overlap", "4"], "whole image at once"),
        (["--classic", "wiener", "--kernel", "k.npy", "--noise-sigma", "-1"], "must be a finite number >= 0"),
    ],
)
def test_usage_errors_exit_1(blurred, capsys, args, message):
    photo, _ = blurred
    assert _run(*args, photo) == 1
    assert message in _error_line(capsys.readouterr().err)
    assert not photo.with_name("photo_restored.png").exists()


@pytest.mark.parametrize(
    ("kernel", "code", "message"),
    [
        (np.array([[0.5, -0.1], [0.3, 0.3]]), 65, "negative values"),
        (None, 66, "kernel file not found"),
    ],
)
def test_bad_or_missing_kernel(blurred, tmp_path, capsys, kernel, code, message):
    photo, _ = blurred
    path = tmp_path / "bad.npy"
    if kernel is not None:
        np.save(path, kernel)
    assert _run("--classic", "wiener", "--kernel", path, photo) == code
    assert message in _error_line(capsys.readouterr().err)
    assert not photo.with_name("photo_restored.png").exists()


def test_nlm_without_opencv_exits_78_before_any_image(blurred):
    """A board without OpenCV: sys.modules["cv2"] = None makes `import cv2` fail as if not installed."""
    photo, _ = blurred
    hide_cv2 = ("import sys; sys.modules['cv2'] = None; from edge_runtime.cli import main; "
                "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", hide_cv2, "--classic", "nlm", "--noise-sigma", "25", str(photo)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 78, result.stderr
    assert "pip install opencv-python-headless" in _error_line(result.stderr)
    assert not photo.with_name("photo_restored.png").exists()


def test_nlm_denoises_with_opencv(tmp_path, clean, capsys):
    pytest.importorskip("cv2")
    noisy = quantize_8bit(add_gaussian_noise(clean / 255.0, 25.0, np.random.default_rng(0)))
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(tmp_path / "noisy.png")
    assert _run("--classic", "nlm", tmp_path / "noisy.png", "--threads", "1", "--compare") == 0
    assert "estimated noise sigma" in capsys.readouterr().err
    out = np.asarray(Image.open(tmp_path / "noisy_restored.png"))
    assert psnr(out, clean, 255) > psnr(np.rint(noisy * 255), clean, 255) + 3.0
    assert Image.open(tmp_path / "noisy_compare.png").size == (2 * clean.shape[1], clean.shape[0])


def test_signal_during_a_classic_restore_abandons_that_file(blurred, tmp_path, monkeypatch):
    """SIGINT while the whole-image method runs is honoured after it, before the write: as at a tile."""
    photo, kernel = blurred
    import edge_runtime.cli as cli

    real = cli.restore_classic

    def restore_then_signal(*args, **kwargs):
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # StopSignals records it; the CLI acts at its next check
        return out

    monkeypatch.setattr(cli, "restore_classic", restore_then_signal)
    manifest = tmp_path / "run.json"
    code = _run("--classic", "wiener", "--kernel", kernel, "--noise-sigma", "2.55", photo, "--json", manifest)
    assert code == 130
    assert not photo.with_name("photo_restored.png").exists()
    data = json.loads(manifest.read_text())
    assert data["interrupted_by"] == "SIGINT" and data["files"][0]["status"] == "interrupted"


def test_help_documents_the_classic_options(capsys):
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--classic METHOD", "--kernel SPEC", "motion:LENGTH,ANGLE", "--noise-sigma S", "--rl-iterations N",
                   "--iterations N", "--strength S", "plug-and-play",
                   "160-185 MiB per RGB megapixel", "edge-restore --classic wiener --kernel k.npy"):
        assert phrase in text, phrase
