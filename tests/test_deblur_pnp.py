"""Plug-and-play deconvolution with the shipped INT8 denoiser: quality, blocks, kernels, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import load_model
from edge_runtime.classic import wiener_deconvolve
from edge_runtime.cli import main
from edge_runtime.deblur import PnPSchedule, deblur, deblur_with_info, pnp_deconvolve
from edge_runtime.errors import KernelError
from edge_runtime.kernels import linear_motion_kernel, parse_kernel_spec
from edge_runtime.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "denoise_int8.tflite"
skimage_data = pytest.importorskip("skimage.data")


def blurred_photo(kernel: np.ndarray, side: int = 160, sigma: float = 2.55) -> tuple[np.ndarray, np.ndarray]:
    from train.degradations import add_gaussian_noise, blur, quantize_8bit

    clean = skimage_data.astronaut()[60 : 60 + side, 160 : 160 + side].astype(np.float32) / 255
    noisy = quantize_8bit(add_gaussian_noise(blur(clean, kernel.astype(np.float32)), sigma, np.random.default_rng(0)))
    return clean, noisy


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL, threads=1)


def test_pnp_beats_wiener_with_the_true_kernel(model):
    k = linear_motion_kernel(13, 30)
    clean, blurred = blurred_photo(k)
    sharp = deblur(blurred, k, model, noise_sigma=2.55)
    wiener = np.clip(wiener_deconvolve(blurred, k, sigma=2.57), 0, 1)
    assert sharp.shape == blurred.shape and sharp.dtype == blurred.dtype
    assert psnr(sharp, clean) > psnr(blurred, clean) + 4.0
    assert psnr(sharp, clean) > psnr(wiener, clean) + 0.7


def test_boundary_passes_restore_the_borders_of_a_photo_cut_from_a_larger_scene(model):
    """The scene goes on past the frame: blurred by a 'valid' convolution, the border pixels mix
    in parts the photo does not show. The Wiener passes that estimate the margin win most of the
    border loss back (a band of one kernel size), and some of the interior too."""
    from scipy.signal import fftconvolve

    from train.degradations import add_gaussian_noise, quantize_8bit

    k = linear_motion_kernel(15, 30).astype(np.float32)
    r, side = k.shape[0] // 2, 160
    scene = skimage_data.astronaut()[60 - r : 60 + side + r, 160 - r : 160 + side + r].astype(np.float32) / 255
    clean = scene[r:-r, r:-r]
    seen = np.stack([fftconvolve(scene[..., c], k, mode="valid") for c in range(3)], -1)
    blurred = quantize_8bit(add_gaussian_noise(seen, 2.55, np.random.default_rng(0)))
    band = np.ones((side, side), bool)
    band[15:-15, 15:-15] = False
    plain = pnp_deconvolve(blurred, k, model, 2.57, PnPSchedule(boundary_passes=0))
    passes = pnp_deconvolve(blurred, k, model, 2.57, PnPSchedule())  # the default: two passes
    assert psnr(passes[band], clean[band]) > psnr(plain[band], clean[band]) + 1.0
    assert psnr(passes, clean) > psnr(plain, clean) + 0.4
    assert psnr(passes[~band], clean[~band]) > psnr(plain[~band], clean[~band])


@pytest.mark.parametrize("passes", [-1, 1.5, True])
def test_bad_boundary_passes_are_refused(passes):
    from edge_runtime.errors import UsageError

    with pytest.raises(UsageError, match="boundary passes"):
        PnPSchedule(boundary_passes=passes).check()


def test_blocks_join_without_seams(model):
    k = linear_motion_kernel(9, 0)
    clean, blurred = blurred_photo(k, side=200)
    u8 = np.rint(blurred * 255).astype(np.uint8)
    whole = pnp_deconvolve(u8, k, model, 2.57, PnPSchedule(iterations=3))
    blocks = pnp_deconvolve(u8, k, model, 2.57, PnPSchedule(iterations=3), core=64)
    # the block cores meet at columns/rows 64 and 128: no step there beyond what the image has
    diff = np.abs(whole.astype(np.float32) - blocks.astype(np.float32))
    assert diff.mean() < 3.0 and abs(psnr(whole / 255.0, clean) - psnr(blocks / 255.0, clean)) < 0.3


def test_progress_counts_iterations_times_tiles(model):
    k = linear_motion_kernel(7, 90)
    _, blurred = blurred_photo(k, side=96)
    calls = []
    deblur(blurred, k, model, noise_sigma=2.55, iterations=3, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and calls[-1][1] % 3 == 0


def test_estimated_noise_sigma_is_reported(model):
    k = linear_motion_kernel(9, 45)
    _, blurred = blurred_photo(k, side=128, sigma=5.0)
    _, info = deblur_with_info(blurred, "motion:9,45", model, iterations=2)
    assert info.noise_sigma_estimated and 3.0 < info.noise_sigma < 7.5
    assert info.manifest()["kernel"] == {"source": "motion", "length": 9.0, "angle": 45.0, "shape": [9, 9]}


@pytest.mark.parametrize("spec, message", [
    ("motion:0,10", "LENGTH must be between"), ("motion:12", "expected 2"), ("motion:a,b", "not a list of numbers"),
    ("disk:-2", "RADIUS must be > 0"), ("gaussian:nan", "finite"), ("disk:", "not a list of numbers"),
])
def test_malformed_kernel_specs(spec, message):
    with pytest.raises(KernelError, match=message):
        parse_kernel_spec(spec)


def write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("kernel_arg, extra, code, message", [
    ("motion:abc", [], 65, "motion"),
    ("disk:0", [], 65, "RADIUS"),
    ("missing.npy", [], 66, "not found"),
    ("bad.npy", [], 65, "unreadable"),
    ("motion:60,0", [], 65, "larger than the image"),
    ("motion:9,0", ["--noise-sigma", "-1"], 1, "noise"),
])
def test_cli_bad_deconvolution_input_writes_nothing(tmp_path, capsys, kernel_arg, extra, code, message):
    photo = write_png(tmp_path / "p.png", np.full((40, 40, 3), 128, np.uint8))
    (tmp_path / "bad.npy").write_bytes(b"not a numpy file")
    kernel = str(tmp_path / kernel_arg) if kernel_arg.endswith(".npy") else kernel_arg
    rc = main(["--model", str(MODEL), "--kernel", kernel, str(photo), "-o", str(tmp_path / "out.png"), *extra])
    err = capsys.readouterr().err
    assert rc == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("edge-restore: error:") and message in last
    assert not (tmp_path / "out.png").exists()


def test_cli_deconvolution_manifest_and_saved_kernel(tmp_path, capsys):
    k = linear_motion_kernel(9, 30)
    _, blurred = blurred_photo(k, side=96)
    photo = write_png(tmp_path / "b.png", np.rint(blurred * 255).astype(np.uint8))
    rc = main(["--model", str(MODEL), "--kernel", "motion:9,30", "--iterations", "2", str(photo),
               "-o", str(tmp_path / "s.png"), "--json", str(tmp_path / "m.json"), "--save-kernel", str(tmp_path / "k.npy")])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "m.json").read_text())
    entry = manifest["files"][0]["deblur"]
    assert entry["kernel"]["source"] == "motion" and entry["schedule"]["iterations"] == 2
    assert entry["noise_sigma_estimated"] is True and manifest["deconvolution"]["iterations"] == 2
    assert np.allclose(np.load(tmp_path / "k.npy"), k)


def test_strength_scales_the_correction_monotonically(tmp_path):
    from train.degradations import add_gaussian_noise, quantize_8bit

    clean = skimage_data.astronaut()[:128, :128].astype(np.float32) / 255
    noisy = quantize_8bit(add_gaussian_noise(clean, 15, np.random.default_rng(1)))
    distances = []
    for s in (0.0, 0.5, 1.0, 1.5):
        out = load_model(MODEL, threads=1, strength=s).restore(noisy)
        distances.append(float(np.abs(out - noisy).mean()))
    assert distances[0] < 1e-6
    assert all(a < b for a, b in zip(distances, distances[1:]))
    with pytest.raises(Exception, match="strength"):
        load_model(MODEL, strength=3)


def test_cli_motion_estimate_records_length_and_angle(tmp_path, capsys):
    k = linear_motion_kernel(15, 30)
    _, blurred = blurred_photo(k, side=256)
    photo = write_png(tmp_path / "belt.png", np.rint(blurred * 255).astype(np.uint8))
    rc = main(["--model", str(MODEL), "--kernel", "motion:estimate", "--iterations", "2", "--noise-sigma", "2.55",
               str(photo), "-o", str(tmp_path / "s.png"), "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == 0, err
    kernel = json.loads((tmp_path / "m.json").read_text())["files"][0]["deblur"]["kernel"]
    assert kernel["source"] == "motion-estimate" and abs(kernel["length"] - 15) <= 1 and abs(kernel["angle"] - 30) <= 3
    assert "kernel motion-estimate" in err  # the estimate is printed


def test_blind_estimate_deblurs_and_saves_its_kernel(tmp_path):
    k = linear_motion_kernel(9, 0)  # a blur the estimator recovers well (others: docs/deblur.md)
    clean, blurred = blurred_photo(k, side=256)
    photo = write_png(tmp_path / "shaky.png", np.rint(blurred * 255).astype(np.uint8))
    rc = main(["--model", str(MODEL), "--kernel", "estimate", "--iterations", "2", "--noise-sigma", "2.55",
               str(photo), "-o", str(tmp_path / "s.png"), "--save-kernel", str(tmp_path / "k.png"), "-q"])
    assert rc == 0
    from PIL import Image

    saved = np.asarray(Image.open(tmp_path / "k.png"))
    assert saved.ndim == 2 and saved.shape[0] % 2 == 1 and saved.max() == 255
    sharp = np.asarray(Image.open(tmp_path / "s.png")).astype(np.float32) / 255
    assert psnr(sharp, clean) > psnr(blurred, clean) + 1.0


def test_blind_deblurring_of_a_sharp_photo_only_denoises_it(tmp_path, capsys):
    """No blur found: the manifest and the message say so, the saved kernel is a delta, and the
    photo comes back denoised, not over-sharpened (docs/deblur.md, "A sharp photo: no blur found")."""
    clean, noisy = blurred_photo(np.ones((1, 1)), side=256)
    photo = write_png(tmp_path / "sharp.png", np.rint(noisy * 255).astype(np.uint8))
    rc = main(["--model", str(MODEL), "--kernel", "estimate", "--iterations", "2", "--noise-sigma", "2.55", str(photo),
               "-o", str(tmp_path / "s.png"), "--save-kernel", str(tmp_path / "k.npy"), "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == 0, err
    kernel = json.loads((tmp_path / "m.json").read_text())["files"][0]["deblur"]["kernel"]
    assert kernel["source"] == "estimate" and kernel["blur"].startswith("none found")
    assert "none found" in err
    saved = np.load(tmp_path / "k.npy")
    assert saved.max() == 1.0 and np.count_nonzero(saved) == 1
    from PIL import Image

    out = np.asarray(Image.open(tmp_path / "s.png")).astype(np.float32) / 255
    assert psnr(out, clean) > psnr(noisy, clean)


def test_an_estimated_kernel_raises_the_schedule_noise_floor(model):
    """An estimated kernel's error acts as extra noise: the schedule never goes below
    BLIND_SIGMA_FLOOR with `estimate`, while a known kernel keeps the given level."""
    from edge_runtime.deblur import BLIND_SIGMA_FLOOR

    k = linear_motion_kernel(9, 0)
    _, blurred = blurred_photo(k, sigma=0.5)
    _, blind = deblur_with_info(blurred, "estimate", model, noise_sigma=0.5, iterations=1)
    assert blind.schedule_sigma == BLIND_SIGMA_FLOOR and blind.noise_sigma == 0.5
    assert blind.manifest()["kernel"]["source"] == "estimate" and blind.manifest()["kernel"]["crop"] == 512
    runs = blind.manifest()["kernel"]["runs"]  # the estimator's three runs, each with its two scores
    assert len(runs) == 3 and all(set(r) == {"run", "cost", "l0_energy"} for r in runs)
    assert blind.manifest()["kernel"]["run"] in [r["run"] for r in runs]
    assert blind.manifest()["schedule"]["noise_sigma"] == BLIND_SIGMA_FLOOR
    _, known = deblur_with_info(blurred, k, model, noise_sigma=0.5, iterations=1)
    assert known.schedule_sigma == 0.5  # float input: no 8-bit rounding noise added


def test_a_deblur_prior_refuses_to_denoise_without_a_kernel(tmp_path, capsys):
    """A pnp-prior model learned what the data step leaves: run on a photo without --kernel it is
    refused with a usage error (2) before any output; with a kernel it deblurs."""
    from dataclasses import replace

    import onnx

    from edge_runtime.contract import METADATA_KEY, ModelContract

    fixture = onnx.load(ROOT / "tests" / "data" / "float_static.onnx")
    entry = next(p for p in fixture.metadata_props if p.key == METADATA_KEY)
    entry.value = replace(ModelContract.from_json(entry.value), task="pnp-prior").to_json()
    prior = tmp_path / "prior.onnx"
    onnx.save(fixture, prior)
    photo = write_png(tmp_path / "p.png", np.full((40, 40, 3), 128, np.uint8))
    rc = main(["--model", str(prior), str(photo), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert rc == 1 and "plug-and-play deblurring prior" in err and "--kernel" in err
    assert not (tmp_path / "out.png").exists()
    assert main(["--model", str(prior), "--kernel", "motion:5,0", "--noise-sigma", "1", str(photo),
                 "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").exists()


def test_the_trained_prior_beats_the_photo_denoiser_as_the_prior(model):
    """deblur_prior learned what the data step leaves (train/pnp_prior.py): on the same blurred
    inputs, through the same loop, it beats the main denoiser as the prior."""
    from edge_runtime.kernels import disk_kernel
    from train.degradations import motion_kernel

    prior = load_model(ROOT / "models" / "deblur_prior_int8.tflite", threads=1)
    assert prior.contract.task == "pnp-prior"
    gains = []
    for k in (linear_motion_kernel(13, 30), motion_kernel(np.random.default_rng(3), 19), disk_kernel(3.0)):
        k = np.asarray(k, np.float32) / np.sum(k)
        clean, blurred = blurred_photo(k)
        gains.append(psnr(deblur(blurred, k, prior, 2.55), clean) - psnr(deblur(blurred, k, model, 2.55), clean))
    assert np.mean(gains) > 0.4 and min(gains) > -0.2, gains


def test_block_plan_keeps_a_one_block_area_whole_and_tiles_larger_images():
    from edge_runtime.deblur import block_plan

    k = linear_motion_kernel(21, 30)
    # 1 MP in a wide frame: one block, not a 1024 px block plus a sliver that re-runs the prior
    assert len(block_plan(866, 1155, k).blocks()) == 1 and len(block_plan(400, 2600, k).blocks()) == 1
    plan = block_plan(3000, 4000, k)
    covered = np.zeros((3000, 4000), np.int32)
    for (r0, r1, c0, c1), (s0, s1, t0, t1) in plan.blocks():
        assert r0 <= c0 < c1 <= r1 and s0 <= t0 < t1 <= s1
        covered[c0:c1, t0:t1] += 1
    assert len(plan.blocks()) == 12 and (covered == 1).all()


def test_a_block_peaks_below_ten_copies_of_its_padded_planes():
    """The data step works in place: a block's numpy peak stays near 9 float32 copies of its padded
    C x H x W planes (plain expressions took 12), which is what bounds a 48 MP photo's memory."""
    import tracemalloc

    from edge_runtime.classic import _fast_len
    from edge_runtime.deblur import PlaneFFT, pnp_deconvolve_block

    image = np.random.default_rng(0).random((400, 400, 3)).astype(np.float32)
    k = linear_motion_kernel(21, 30)
    stack = 3 * _fast_len(400 + 2 * 21) ** 2 * 4
    tracemalloc.start()
    try:
        pnp_deconvolve_block(image, k, lambda x: x * np.float32(0.9), 2.57, PnPSchedule(), fft=PlaneFFT(2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * stack, peak / stack


@pytest.mark.parametrize("index", range(8))
def test_each_geometric_transform_is_undone_by_its_inverse(index):
    from edge_runtime.deblur import geometric_transform

    image = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    turned = geometric_transform(image, index)
    assert turned.shape == ((7, 5, 3) if index % 2 else (5, 7, 3))
    assert np.array_equal(geometric_transform(turned, index, inverse=True), image)


def test_self_ensemble_turns_the_prior_input_through_eight_transforms_and_back():
    """Prior step i sees transform i mod 8 of the image (a non-square one arrives with its sides
    swapped on odd steps), and what it returns is turned back before the relaxation."""
    from edge_runtime.deblur import PlaneFFT, geometric_transform, pnp_deconvolve_block

    image = np.random.default_rng(1).random((40, 56, 3)).astype(np.float32)
    k = linear_motion_kernel(5, 0)
    seen: list[np.ndarray] = []

    def spy(x: np.ndarray) -> np.ndarray:
        seen.append(np.array(x))
        return x  # an identity prior: the result is then independent of the transforms

    on = pnp_deconvolve_block(image, k, spy, 2.57, PnPSchedule(iterations=8, self_ensemble=True), fft=PlaneFFT(1))
    seen_on = list(seen)
    seen.clear()
    off = pnp_deconvolve_block(image, k, spy, 2.57, PnPSchedule(iterations=8, self_ensemble=False), fft=PlaneFFT(1))
    assert [s.shape[:2] for s in seen_on] == [(40, 56), (56, 40)] * 4
    assert [s.shape[:2] for s in seen] == [(40, 56)] * 8
    # an identity prior leaves every data step as it was, so step i saw exactly transform i of it
    for i, (turned, plain) in enumerate(zip(seen_on, seen)):
        assert np.array_equal(turned, geometric_transform(plain, i)), i
    np.testing.assert_allclose(on, off, atol=1e-5)
