"""scripts/camera_noise_stats.py: the statistics that compare real camera noise with the simulation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.script_module import load_script

stats = load_script("camera_noise_stats")


def test_autocorrelation_tells_white_from_smoothed_noise():
    from edge_runtime.kernels import gaussian_kernel
    from train.degradations import blur

    white = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    smooth = blur(white[..., None], gaussian_kernel(1.5))[..., 0]
    assert abs(stats.autocorrelation(white, 1)) < 0.05
    assert stats.autocorrelation(smooth, 1) > 0.7 > stats.autocorrelation(smooth, 4) > 0.1


def test_band_rms_puts_an_offset_in_the_coarse_band_and_a_checkerboard_in_the_fine_band():
    offset = np.full((64, 64, 3), 2.0)
    whole, fine, coarse = stats.band_rms(offset)
    assert abs(whole - 2) < 1e-6 and fine < 0.05 and abs(coarse - 2) < 0.05
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 2.0 - 1.0
    whole, fine, coarse = stats.band_rms(np.repeat(checker[..., None], 3, axis=2))
    assert abs(whole - 1) < 1e-6 and coarse < 0.05 and abs(fine - 1) < 0.05


def test_main_reads_pairs_and_scores_a_model(tmp_path, capsys):
    rng = np.random.default_rng(1)
    pairs, clean = tmp_path / "pairs", tmp_path / "clean"
    pairs.mkdir()
    clean.mkdir()
    for i in range(2):
        yy, xx = np.mgrid[0:48, 0:48]
        ref = np.stack([80 + 2 * xx, 90 + 2 * yy, 120 + xx + yy + 10 * i], axis=2).astype(np.uint8)  # smooth
        noisy = np.clip(ref + rng.normal(0, 4, ref.shape), 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(pairs / f"cam_{i}_mean.png")
        Image.fromarray(noisy).save(pairs / f"cam_{i}_real.png")
        Image.fromarray(ref).save(clean / f"photo{i}.png")
    assert stats.main(["--pairs", str(pairs), "--clean", str(clean), "--images", "2", "--crop", "48",
                       "--model", "denoise_real"]) == 0
    out = capsys.readouterr().out
    assert "real (2 pairs)" in out and "fine (2)" in out
    lines = out.splitlines()
    bands = lines[next(i for i, line in enumerate(lines) if line.startswith("error RMS")):]
    noisy_row = next(line for line in bands if "noisy input" in line).split()
    model_row = next(line for line in bands if line.strip().startswith("denoise_real")).split()
    alignment = lines[next(i for i, line in enumerate(lines) if line.startswith("alignment")) + 1].split()
    assert alignment[:2] == ["noisy", "input"] and float(alignment[2]) < 0.2  # pairs made without any shift
    assert 3 < float(noisy_row[2]) < 5  # the residual's RMS: about the 4-level noise added
    assert float(model_row[1]) < float(noisy_row[2])  # the model lowers the error


def test_main_refuses_a_missing_folder(tmp_path, capsys):
    assert stats.main(["--pairs", str(tmp_path / "nope"), "--clean", str(tmp_path)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_misalignment_recovers_a_subpixel_shift_and_an_offset():
    from skimage import data

    ref = data.astronaut()[100:228, 150:278].astype(np.float64)
    freq = np.fft.fftfreq(128)
    phase = np.exp(2j * np.pi * (0.3 * freq[None, :] - 0.2 * freq[:, None]))  # ref sampled at (x + 0.3, y - 0.2)
    shifted = np.stack([np.fft.ifft2(np.fft.fft2(ref[..., c]) * phase).real for c in range(3)], axis=2)
    noise = np.random.default_rng(2).normal(0, 2, ref.shape)
    error = shifted + 1.5 + noise - ref
    core = (slice(8, -8), slice(8, -8))  # away from the periodic shift's wrapped border
    dx, dy, offset, fitted = stats.misalignment(error[core], ref[core])
    assert abs(dx - 0.3) < 0.05 and abs(dy + 0.2) < 0.05 and abs(offset - 1.5) < 0.1
    assert np.mean((error[core] - fitted) ** 2) < np.mean(error[core] ** 2)
