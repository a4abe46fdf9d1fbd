"""Blind kernel estimation: linear motion recovered, general kernels usable, bad input refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_runtime.classic import wiener_deconvolve
from edge_runtime.errors import KernelError
from edge_runtime.kernel_estimation import (KernelEstimateSettings, estimate_kernel, estimate_kernel_candidates,
                                            estimate_linear_motion)
from edge_runtime.kernels import linear_motion_kernel
from train.degradations import add_gaussian_noise, blur, quantize_8bit

skdata = pytest.importorskip("skimage.data")
SIGMA = 2.55  # 1% noise, as issue 16's targets


def _photo(size: int = 256) -> np.ndarray:
    return skdata.astronaut()[:size, 100 : 100 + size].astype(np.float32) / 255.0


def _degrade(img: np.ndarray, kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return quantize_8bit(add_gaussian_noise(blur(img, kernel.astype(np.float32)), SIGMA, rng))


def _psnr(x: np.ndarray, ref: np.ndarray, margin: int) -> float:
    d = np.clip(x, 0, 1)[margin:-margin, margin:-margin] - ref[margin:-margin, margin:-margin]
    return float(-10 * np.log10(np.mean(d**2)))


@pytest.mark.parametrize("length, angle", [(15.0, 30.0), (21.5, 120.0), (11.0, 0.0)])
def test_linear_motion_recovered(length, angle):
    blurred = _degrade(_photo(320), linear_motion_kernel(length, angle))
    got_length, got_angle = estimate_linear_motion(blurred)
    assert 0 <= got_angle < 180
    assert abs(got_length - length) <= 1.0
    assert abs((got_angle - angle + 90) % 180 - 90) <= 3.0


def test_estimated_kernel_is_valid_and_deblurs():
    clean = _photo(256)
    true_kernel = linear_motion_kernel(13, 45)  # symmetric: centred by construction, no shift to search
    blurred = _degrade(clean, true_kernel)
    k = estimate_kernel(blurred, 15, crop=256, noise_sigma=SIGMA)
    assert k.shape == (15, 15) and k.dtype == np.float64
    assert k.min() >= 0 and abs(k.sum() - 1) < 1e-9
    idx = np.arange(15)
    assert abs(k.sum(axis=1) @ idx - 7) <= 0.5 and abs(k.sum(axis=0) @ idx - 7) <= 0.5
    m = 16
    blurred_psnr = _psnr(blurred, clean, m)
    est_psnr = _psnr(wiener_deconvolve(blurred, k, sigma=SIGMA), clean, m)
    true_psnr = _psnr(wiener_deconvolve(blurred, true_kernel, sigma=SIGMA), clean, m)
    assert est_psnr > blurred_psnr + 2.0  # measured +3.1 dB
    assert 10 ** ((true_psnr - est_psnr) / 10) <= 3.0  # Levin et al.'s error ratio


def test_a_sharp_photo_gets_a_delta_kernel():
    """Below the estimator's resolution the kept run is a peaked blob (0.44-0.56 here); it is
    taken for no blur and a delta comes back, unless no_blur_peak = 1 turns the check off."""
    sharp = quantize_8bit(add_gaussian_noise(_photo(192), SIGMA, np.random.default_rng(0)))
    found = estimate_kernel_candidates(sharp, 15, crop=192, noise_sigma=SIGMA)
    kept = found.kept
    assert found.no_blur and kept.max() >= KernelEstimateSettings().no_blur_peak and np.count_nonzero(kept) > 1
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    np.testing.assert_array_equal(found.kernel, delta)
    off = estimate_kernel_candidates(sharp, 15, crop=192, noise_sigma=SIGMA, settings=KernelEstimateSettings(no_blur_peak=1.0))
    assert not off.no_blur
    np.testing.assert_array_equal(off.kernel, kept)  # the same runs, only the check differs


def test_a_blurred_photo_keeps_its_estimate():
    """A 5 px blur, near the smallest the estimator resolves, is not taken for no blur."""
    blurred = _degrade(_photo(192), linear_motion_kernel(5, 60))
    found = estimate_kernel_candidates(blurred, 15, crop=192, noise_sigma=SIGMA)
    assert not found.no_blur and found.kernel.max() < KernelEstimateSettings().no_blur_peak


@pytest.mark.parametrize("bad", [np.zeros((20, 20, 3), np.float32), np.full((64, 64), np.nan, np.float32),
                                 np.zeros((64, 64, 2), np.float32)])
def test_bad_images_raise_one_line_kernel_error(bad):
    for call in (lambda: estimate_kernel(bad, 31), lambda: estimate_linear_motion(bad)):
        with pytest.raises(KernelError) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 30}, {"kernel_size": 1}, {"noise_sigma": -1.0}, {"crop": 10}])
def test_bad_parameters_raise_kernel_error(kwargs):
    with pytest.raises(KernelError):
        estimate_kernel(np.zeros((128, 128), np.float32), **{"kernel_size": 15, **kwargs})


@pytest.mark.parametrize("change", [{"threshold": 1.0}, {"min_component": -0.1}, {"lambda_decay": 0.5},
                                    {"iterations_per_level": 0}, {"refine_rounds": 1.5}, {"lambda_start": float("nan")},
                                    {"kernel_tikhonov": -1.0}, {"candidate_size_ratio": 0.0},
                                    {"candidate_size_ratio": 1.5}, {"candidate_threshold": 1.0},
                                    {"candidates": "yes"}, {"edge_selection": 1.0},
                                    {"candidate_edge_selection": -0.1}, {"no_blur_peak": 0.0},
                                    {"no_blur_peak": 1.5}])
def test_bad_settings_raise_one_line_kernel_error(change):
    settings = dataclasses.replace(KernelEstimateSettings(), **change)
    with pytest.raises(KernelError) as info:
        estimate_kernel(np.zeros((128, 128), np.float32), 15, settings=settings)
    assert next(iter(change)) in str(info.value) and "\n" not in str(info.value)


def test_settings_reach_the_estimate():
    """The defaults are what estimate_kernel uses without settings; a changed field changes the
    kernel (a lower threshold keeps more, fainter kernel pixels)."""
    blurred = _degrade(_photo(192), linear_motion_kernel(9, 30))
    default = estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA)
    np.testing.assert_array_equal(default, estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA,
                                                           settings=KernelEstimateSettings()))
    loose = estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA,
                            settings=KernelEstimateSettings(threshold=0.0, min_component=0.0, refine_rounds=0))
    assert np.count_nonzero(loose) > np.count_nonzero(default)


def test_kernel_distance_ignores_translation_and_medoid_outvotes_an_outlier():
    from edge_runtime.kernel_estimation import _kernel_distance, _medoid

    line = linear_motion_kernel(9, 0)  # 9x9 with one horizontal row
    shifted = np.roll(line, 2, axis=0)
    assert _kernel_distance(line, shifted) < 1e-9
    assert _kernel_distance(line, linear_motion_kernel(9, 90)) > 0.5
    texture = np.random.default_rng(0).random((9, 9))
    texture /= texture.sum()
    # a failed full-crop estimate (texture) against four quadrant estimates of the same line blur
    candidates = [texture, line, shifted, np.roll(line, -1, axis=1), linear_motion_kernel(8.5, 2)]
    assert _medoid(candidates) in (1, 2, 3)


def test_consensus_needs_quadrants_big_enough():
    from edge_runtime.kernel_estimation import QUADRANT_MIN_SIDE, _quadrants

    big = np.zeros((512, 400))
    quads = _quadrants(big, 31)
    assert [q.shape for q in quads] == [(287, 231)] * 4
    assert not _quadrants(np.zeros((2 * (QUADRANT_MIN_SIDE - 31) - 2, 512)), 31)  # too small: one estimate
    blurred = _degrade(_photo(256), linear_motion_kernel(13, 45))
    on = estimate_kernel(blurred, 15, crop=256, noise_sigma=SIGMA, settings=KernelEstimateSettings(consensus=True))
    off = estimate_kernel(blurred, 15, crop=256, noise_sigma=SIGMA, settings=KernelEstimateSettings(consensus=False))
    np.testing.assert_array_equal(on, off)  # 143 px quadrants: consensus skipped


def test_candidate_runs():
    from edge_runtime.kernel_estimation import _candidate_runs

    default = KernelEstimateSettings()
    runs = _candidate_runs(31, default)
    assert [(size, s.threshold) for size, s in runs] == [(31, 0.05), (31, 0.02), (21, 0.05)]
    assert _candidate_runs(31, KernelEstimateSettings(candidates=False)) == [(31, KernelEstimateSettings(candidates=False))]
    # a 3 px kernel has no smaller support, and threshold 0.02 makes the low-threshold run the same
    assert [size for size, _ in _candidate_runs(3, KernelEstimateSettings(threshold=0.02))] == [3]


def test_candidate_runs_with_edge_selection():
    from edge_runtime.kernel_estimation import _candidate_runs

    runs = _candidate_runs(31, KernelEstimateSettings(candidate_edge_selection=0.2))
    assert [(size, s.threshold, s.edge_selection) for size, s in runs] == [
        (31, 0.05, 0.0), (31, 0.02, 0.0), (21, 0.05, 0.0), (31, 0.05, 0.2), (31, 0.02, 0.2), (21, 0.05, 0.2)]
    # runs that already select edges at that threshold are not repeated
    same = _candidate_runs(31, KernelEstimateSettings(edge_selection=0.2, candidate_edge_selection=0.2))
    assert [s.edge_selection for _, s in same] == [0.2, 0.2, 0.2]


def test_edge_selection_keeps_blurred_edges_and_drops_fine_texture():
    """Xu & Jia's r-map: across a blurred step edge the gradients point one way (kept); on stripes
    one pixel wide they cancel within the 5x5 window (dropped); flat areas are dropped too."""
    from edge_runtime.kernel_estimation import _edge_selection

    plane = np.zeros((64, 96))
    plane[:, 16:48] = 1.0  # two step edges, at columns 16 and 48
    plane[:, 64:] = np.arange(32) % 2  # one-pixel stripes
    blurred = blur(plane[..., None].astype(np.float32), linear_motion_kernel(3, 0).astype(np.float32))[..., 0]
    mask = _edge_selection(blurred, 0.3)
    assert mask is not None and mask.shape == plane.shape
    assert mask[8:-8, 14:18].mean() == 1.0 and mask[8:-8, 46:50].mean() == 1.0  # the edges
    assert mask[8:-8, 70:90].mean() == 0.0  # the stripes
    assert mask[8:-8, 24:40].mean() == 0.0  # flat
    assert _edge_selection(blurred, 0.0) is None


def test_edge_selection_reaches_the_estimate():
    blurred = _degrade(_photo(192), linear_motion_kernel(9, 30))
    default = estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA, settings=KernelEstimateSettings(candidates=False))
    selected = estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA,
                               settings=KernelEstimateSettings(candidates=False, edge_selection=0.3))
    assert not np.array_equal(default, selected)
    assert selected.sum() == pytest.approx(1.0) and selected.min() >= 0


def test_candidates_return_the_likeliest_run():
    """With candidates on and the L0 check off, the estimate is one of the three runs, the one of
    lowest marginal cost on the crop; off, it is the first run alone."""
    from edge_runtime.kernel_estimation import _candidate_runs, _embed, _estimate_with_consensus, estimate_kernel_candidates
    from edge_runtime.kernel_likelihood import kernel_cost

    three = KernelEstimateSettings(pick_map_weight=0.0)
    blurred = _degrade(_photo(192), linear_motion_kernel(11, 60))
    grey = blurred.mean(axis=2).astype(np.float64)
    runs = [_embed(_estimate_with_consensus(grey, size, SIGMA, s), 15) for size, s in _candidate_runs(15, three)]
    costs = [kernel_cost(grey, k, SIGMA) for k in runs]
    got = estimate_kernel_candidates(blurred, 15, crop=192, noise_sigma=SIGMA, settings=three)
    assert got.labels == ("support 15 px, threshold 0.05", "support 15 px, threshold 0.02", "support 11 px, threshold 0.05")
    assert got.costs == pytest.approx(costs, abs=1e-12) and got.chosen == int(np.argmin(costs)) and got.energies == ()
    for mine, theirs in zip(runs, got.kernels):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA, settings=three), runs[got.chosen])
    off = estimate_kernel(blurred, 15, crop=192, noise_sigma=SIGMA, settings=KernelEstimateSettings(candidates=False))
    np.testing.assert_array_equal(off, runs[0])
    assert runs[2].shape == (15, 15) and not runs[2][:2].any() and not runs[2][:, -2:].any()  # 11 px run, centred


@pytest.mark.parametrize("edge_runs", [0.0, 0.2])
def test_the_default_pick_weighs_the_marginal_cost_and_the_l0_energy(edge_runs):
    """The kept run minimises the standardised marginal cost plus pick_map_weight x the
    standardised L0 energy, over the three default runs or, with candidate_edge_selection, six."""
    from edge_runtime.kernel_estimation import estimate_kernel_candidates, l0_energy

    blurred = _degrade(_photo(192), linear_motion_kernel(11, 60))
    grey = blurred.mean(axis=2).astype(np.float64)
    settings = KernelEstimateSettings(candidate_edge_selection=edge_runs)
    got = estimate_kernel_candidates(blurred, 15, crop=192, noise_sigma=SIGMA, settings=settings)
    assert len(got.kernels) == (6 if edge_runs else 3)
    assert got.labels[3:] == tuple(f"{label}, edge selection 0.2" for label in got.labels[:3])[: len(got.kernels) - 3]
    energies = [l0_energy(grey, k) for k in got.kernels]
    assert got.energies == pytest.approx(energies, rel=1e-9)
    z = lambda v: (np.array(v) - np.mean(v)) / np.std(v)  # noqa: E731
    assert got.chosen == int(np.argmin(z(got.costs) + z(energies)))
    heavy = estimate_kernel_candidates(blurred, 15, crop=192, noise_sigma=SIGMA,
                                       settings=dataclasses.replace(settings, pick_map_weight=100.0))
    assert heavy.chosen == int(np.argmin(energies))


def test_the_l0_energy_charges_a_too_diffuse_kernel_more_than_the_true_one():
    """Explaining a blur with a wider kernel than it had needs a sharper latent image with more
    edges: the L0 energy counts them (the marginal likelihood, where it erred, preferred diffuse)."""
    from edge_runtime.kernel_estimation import l0_energy

    k = linear_motion_kernel(9, 30)
    grey = _degrade(_photo(192), k).mean(axis=2).astype(np.float64)
    wide = linear_motion_kernel(17, 30)
    assert l0_energy(grey, np.pad(k, (wide.shape[0] - k.shape[0]) // 2)) < l0_energy(grey, wide)
    with pytest.raises(KernelError, match="pick_map_weight"):
        KernelEstimateSettings(pick_map_weight=-1.0).check()


def test_settings_from_name_value_texts():
    base = KernelEstimateSettings()
    got = base.with_overrides(["threshold=0.02", "refine_rounds=2", "consensus=true"])
    assert (got.threshold, got.refine_rounds, got.consensus) == (0.02, 2, True)
    assert type(got.refine_rounds) is int and base.with_overrides(["consensus=0"]).consensus is False
    for bad in ("threshold", "nosuch=1", "refine_rounds=two", "consensus=maybe", "threshold=1.5"):
        with pytest.raises(KernelError) as info:
            base.with_overrides([bad])
        assert "\n" not in str(info.value)


def test_kernel_normal_equations_match_the_dense_solve():
    # the FFT-convolution operator is the dense normal matrix M[i, j] = R(d_i - d_j) + gamma, and
    # conjugate gradients reach its exact solution; the masked solve leaves the unknowns off the mask at 0
    from edge_runtime import kernel_estimation as ke

    rng = np.random.default_rng(3)
    latent = rng.normal(size=(40, 36))
    blurred = rng.normal(size=(40, 36))
    size = 5
    eq = ke._KernelNormalEquations(latent, blurred, size, 2.0)
    dense = np.stack([eq.apply(e.reshape(size, size)).ravel() for e in np.eye(size * size)], axis=1)
    assert np.allclose(dense, dense.T, atol=1e-9)
    exact = np.linalg.solve(dense, eq.b.ravel()).reshape(size, size)
    assert np.allclose(eq.solve(np.zeros((size, size)), 200), exact, atol=1e-6)
    mask = np.zeros((size, size), bool)
    mask[1:4, 2] = True
    sub = np.linalg.solve(dense[np.ix_(mask.ravel(), mask.ravel())], eq.b.ravel()[mask.ravel()])
    got = eq.solve(np.zeros((size, size)), 50, mask=mask)
    assert np.all(got[~mask] == 0) and np.allclose(got[mask], sub, atol=1e-6)
    # and the exact solution minimises the least squares it stands for (circular convolutions)

    def objective(k):
        K = ke._otf(k, latent.shape)
        return sum(np.sum((np.fft.irfft2(np.fft.rfft2(s) * K, s=latent.shape) - t) ** 2)
                   for s, t in zip(ke._gradients(latent), ke._gradients(blurred))) + eq.gamma * np.sum(k**2)

    best = objective(exact)
    assert all(objective(exact + 1e-3 * rng.normal(size=exact.shape)) > best for _ in range(5))
