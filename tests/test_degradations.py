"""Degradations: statistics, determinism and shapes of every synthetic degradation."""

import numpy as np
import pytest

from train.degradations import (DegradationConfig, add_gaussian_noise, add_poisson_gaussian_noise, blur, defocus_kernel,
                                degrade, gaussian_kernel, jpeg_compress, motion_kernel, quantize_8bit)


def flat(value: float = 0.5, size: int = 128) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def test_gaussian_noise_has_the_requested_sigma_and_is_seeded():
    a = add_gaussian_noise(flat(), 25.0, np.random.default_rng(1))
    b = add_gaussian_noise(flat(), 25.0, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert abs(a.std() * 255 - 25.0) < 0.5


def test_poisson_gaussian_noise_grows_with_signal():
    rng = np.random.default_rng(0)
    dark = add_poisson_gaussian_noise(flat(0.05), 0.01, 1.0, rng).std()
    bright = add_poisson_gaussian_noise(flat(0.9), 0.01, 1.0, rng).std()
    assert bright > 3 * dark
    assert abs(bright - np.sqrt(0.01 * 0.9 + (1 / 255) ** 2)) < 0.005


def test_jpeg_round_trip_keeps_shape_and_loses_detail():
    img = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    out = jpeg_compress(img, 30)
    assert out.shape == img.shape and out.dtype == np.float32
    assert 0.01 < np.abs(out - img).mean() < 0.5
    gray = jpeg_compress(img[..., :1], 30)
    assert gray.shape == (64, 64, 1)


@pytest.mark.parametrize("kernel", [gaussian_kernel(2.0), defocus_kernel(3.5), motion_kernel(np.random.default_rng(3), 25)])
def test_kernels_are_normalised_and_non_negative(kernel):
    assert kernel.ndim == 2 and kernel.shape[0] % 2 == 1
    assert abs(kernel.sum() - 1.0) < 1e-5
    assert kernel.min() >= 0


def test_motion_kernels_differ_by_seed_and_are_reproducible():
    a = motion_kernel(np.random.default_rng(5), 25)
    b = motion_kernel(np.random.default_rng(5), 25)
    c = motion_kernel(np.random.default_rng(6), 25)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a > 1e-3).sum() >= 3  # a trajectory, not a dot


def test_blur_keeps_size_and_flat_regions_and_softens_edges():
    img = flat(0.3)
    img[:, 64:] = 0.8
    out = blur(img, gaussian_kernel(2.0))
    assert out.shape == img.shape
    assert np.allclose(out[:, :40], 0.3, atol=1e-5) and np.allclose(out[:, 90:], 0.8, atol=1e-5)
    assert 0.3 < out[0, 63, 0] < 0.8


def test_degrade_rounds_to_8_bits_by_default():
    rng = np.random.default_rng(0)
    out = degrade(flat(), DegradationConfig(sigma_min=25, sigma_max=25), rng)
    assert out.min() >= 0 and out.max() <= 1
    assert np.allclose(out * 255, np.round(out * 255), atol=1e-4)
    assert np.array_equal(quantize_8bit(out), out)


def test_deblur_task_blurs_and_adds_only_mild_noise():
    img = np.random.default_rng(1).random((96, 96, 3)).astype(np.float32)
    cfg = DegradationConfig(task="deblur", motion_prob=1.0, deblur_sigma_max=1.0)
    out = degrade(img, cfg, np.random.default_rng(2))
    # a blurred random image loses most of its pixel-to-pixel variation
    assert np.abs(np.diff(out, axis=1)).mean() < 0.6 * np.abs(np.diff(img, axis=1)).mean()


def test_deblur_noise_ignores_the_denoiser_sigma_range():
    img = np.random.default_rng(1).random((48, 48, 3)).astype(np.float32)
    cfg = DegradationConfig(task="deblur", sigma_min=10, sigma_max=50, deblur_sigma_max=2.55)
    out = degrade(img, cfg, np.random.default_rng(2))  # used to fail: uniform(10, 2.55)
    assert out.shape == img.shape


def _box_correlation(noise: np.ndarray) -> float:
    """std of 2x2 block means / std: 0.5 for white noise, towards 1 for spatially correlated noise."""
    r = noise - noise.mean()
    b = (r[0::2, 0::2] + r[1::2, 0::2] + r[0::2, 1::2] + r[1::2, 1::2]) / 4
    return float(b.std() / r.std())


def test_camera_pipeline_round_trip_is_the_identity_without_noise():
    from train.degradations import CameraNoiseConfig, add_camera_noise, linear_to_srgb, srgb_to_linear

    img = np.random.default_rng(0).random((33, 47, 3)).astype(np.float32) * 0.9 + 0.05
    assert np.allclose(linear_to_srgb(srgb_to_linear(img)), img, atol=1e-4)
    silent = CameraNoiseConfig(shot_range=(1e-12, 1.1e-12), read_offset=-60, sharpen_prob=0, jpeg_prob=0)
    out = add_camera_noise(img, np.random.default_rng(1), silent)
    assert out.shape == img.shape and np.abs(out - img).max() < 1e-3


def test_camera_noise_is_seeded_correlated_signal_dependent_and_covers_real_levels():
    from edge_runtime.metrics import psnr
    from train.degradations import CameraNoiseConfig, add_camera_noise

    a = add_camera_noise(flat(0.4), np.random.default_rng(3))
    assert np.array_equal(a, add_camera_noise(flat(0.4), np.random.default_rng(3)))
    fixed = CameraNoiseConfig(shot_range=(1e-3, 1e-3), jpeg_prob=0, sharpen_prob=0)
    noise = add_camera_noise(flat(0.4), np.random.default_rng(4), fixed) - 0.4
    assert _box_correlation(noise) > 0.7  # demosaicing and noise reduction correlate neighbours
    dark = add_camera_noise(flat(0.03), np.random.default_rng(5), fixed) - 0.03
    bright = add_camera_noise(flat(0.8), np.random.default_rng(5), fixed) - 0.8
    assert bright.std() > 1.5 * dark.std()  # shot noise grows with the signal
    # on mid-grey the sampled levels span the 33-40 dB of real high-ISO JPEGs (real_noise_dev) and beyond
    scores = [psnr(quantize_8bit(add_camera_noise(flat(0.45), np.random.default_rng(s))), flat(0.45)) for s in range(40)]
    assert np.percentile(scores, 10) < 36 and np.percentile(scores, 90) > 40


def test_degrade_mixes_camera_noise_in_by_share():
    cfg = DegradationConfig(camera_prob=1.0)
    out = degrade(flat(0.5), cfg, np.random.default_rng(0))
    assert out.shape == (128, 128, 3) and 0 < np.abs(out - 0.5).mean() < 0.1
    assert DegradationConfig.from_dict(__import__("dataclasses").asdict(cfg)) == cfg


def test_smooth_noise_coarse_share_keeps_the_level_and_adds_long_range_correlation():
    from train.degradations import smooth_noise

    white = np.random.default_rng(6).standard_normal((128, 128, 3)).astype(np.float32)
    fine = smooth_noise(white, 0.0, 0.8)
    coarse = smooth_noise(white, 0.0, 0.8, coarse_sigma=3.0, coarse_share=0.5)
    luma = lambda n: n.mean(axis=2)  # noqa: E731
    assert abs(luma(coarse).std() / luma(fine).std() - 1) < 0.05  # the share moves variance, it adds none

    def lag4(plane):
        p = plane - plane.mean()
        return float(np.mean(p[:, 4:] * p[:, :-4]) / np.mean(p * p))

    assert lag4(luma(fine)) < 0.05 and lag4(luma(coarse)) > 0.25


def test_coarse_camera_grain_correlates_noise_over_more_pixels_than_the_default():
    from train.degradations import CAMERA_GRAINS, add_camera_noise

    def box(cfg, seed):
        return _box_correlation((add_camera_noise(flat(0.4), np.random.default_rng(seed), cfg) - 0.4).mean(axis=2))

    def no_jpeg(grain):  # JPEG can flatten a weakly noised flat patch to one value
        return __import__("dataclasses").replace(CAMERA_GRAINS[grain](), jpeg_prob=0.0)

    fine = [box(no_jpeg("fine"), s) for s in range(8)]
    coarse = [box(no_jpeg("coarse"), s) for s in range(8)]
    assert np.median(coarse) > np.median(fine) + 0.1
    cfg = DegradationConfig(camera_prob=1.0, camera=CAMERA_GRAINS["coarse"]())
    assert DegradationConfig.from_dict(__import__("dataclasses").asdict(cfg)) == cfg
