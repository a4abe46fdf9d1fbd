"""scripts/kernel_pick_study.py: the pick between saved estimator runs, rescored offline."""

from __future__ import annotations

import re

import numpy as np
import pytest
from script_module import load_script

from edge_runtime.kernel_likelihood import kernel_costs
from edge_runtime.kernels import linear_motion_kernel
from train.degradations import add_gaussian_noise, blur, quantize_8bit

skimage_data = pytest.importorskip("skimage.data")


def _saved_cases(path, count: int = 2) -> None:
    """Cases in the sweep's --save-cases layout: runs = the true kernel, a delta and a too-wide
    kernel; Wiener MSEs made up so that the true kernel is the best run."""
    k = linear_motion_kernel(9, 30)
    wide = linear_motion_kernel(17, 30)
    side = wide.shape[0]
    runs = np.stack([np.pad(k, (side - k.shape[0]) // 2), np.pad(np.ones((1, 1)), side // 2), wide])
    saved = {}
    for j in range(count):
        clean = skimage_data.astronaut()[100 + 40 * j : 196 + 40 * j, 150:246].astype(np.float32) / 255
        blurred = quantize_8bit(add_gaussian_noise(blur(clean, k.astype(np.float32)), 2.55, np.random.default_rng(j)))
        grey = blurred.mean(axis=2).astype(np.float64)
        saved |= {f"{j}/blurred": np.rint(blurred * 255).astype(np.uint8), f"{j}/clean": clean, f"{j}/true_kernel": k,
                  f"{j}/kernels": runs, f"{j}/costs": np.array(kernel_costs(grey, list(runs), 2.55)),
                  f"{j}/run_mse": np.array([1e-3, 4e-3, 2e-3]), f"{j}/true_mse": np.array(1e-3),
                  f"{j}/name": np.array(f"photo{j} k")}
    np.savez_compressed(path, labels=np.array(["true", "delta", "wide"]), **saved)


def test_pick_study_reports_the_oracle_and_each_weight(tmp_path, capsys):
    study = load_script("kernel_pick_study")
    path = tmp_path / "cases_test.npz"
    _saved_cases(path)
    assert study.main([str(path), "--weights", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "2 cases, 3 runs each; Wiener with the true kernel 30.00 dB" in out
    oracle = re.search(r"oracle\)\s+mean PSNR (\d+\.\d+) dB; error ratio median (\d+\.\d+), <= 3 on (\d+)%", out)
    assert oracle.groups() == ("30.00", "1.00", "100")
    picks = re.findall(r"pick, pick_map_weight (\d+) +mean PSNR (\d+\.\d+) dB", out)
    assert [w for w, _ in picks] == ["0", "1"]
    # the true kernel is both the likeliest and the least L0 energy here: every weight keeps it
    # (the delta would read 23.98 dB, the too-wide kernel 26.99)
    assert [p for _, p in picks] == ["30.00", "30.00"]


def test_peaks_count_the_runs_the_no_blur_check_would_take(tmp_path, capsys):
    study = load_script("kernel_pick_study")
    path = tmp_path / "cases_test.npz"
    _saved_cases(path)
    assert study.main([str(path), "--peaks"]) == 0
    out = capsys.readouterr().out
    # per case: the 9 px motion, the delta (peak 1) and the 17 px motion (the lowest peak)
    median = linear_motion_kernel(9, 30).max()
    assert f"2 cases, 3 runs each; kernel peak median {median:.3f}, largest 1.000; runs at or above no_blur_peak 0.4: 2" in out
    assert "Wiener" not in out  # the pick study itself did not run


def test_pick_study_refuses_bad_input(tmp_path, capsys):
    study = load_script("kernel_pick_study")
    assert study.main([str(tmp_path / "none.npz")]) == 66
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        study.main([str(tmp_path / "none.npz"), "--weights", "1,-2"])
    assert info.value.code == 2
