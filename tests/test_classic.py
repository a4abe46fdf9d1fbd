"""Classic baselines: each one must actually restore, given the truth (kernel, sigma)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.metrics import psnr
from train import classic
from train.degradations import add_gaussian_noise, blur, gaussian_kernel, motion_kernel, quantize_8bit

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def clean_images() -> list[np.ndarray]:
    """Three small, textured 64x64 crops of scikit-image sample photos (offline)."""
    crops = [skdata.astronaut()[120:184, 160:224], skdata.coffee()[90:154, 220:284], skdata.chelsea()[60:124, 180:244]]
    return [c.astype(np.float32) / 255.0 for c in crops]


def _kernels() -> list[np.ndarray]:
    return [motion_kernel(np.random.default_rng(1), 25), gaussian_kernel(2.0)]


@pytest.mark.parametrize("method", ["wiener", "rl"])
def test_deconvolution_improves_psnr_with_true_kernel(clean_images, method):
    sigma = 2.55  # 1% noise after the blur
    for i, clean in enumerate(clean_images):
        for k in _kernels():
            degraded = quantize_8bit(add_gaussian_noise(blur(clean, k), sigma, np.random.default_rng(i)))
            if method == "wiener":
                out = classic.wiener_deconvolve(degraded, k, sigma=np.hypot(sigma, np.sqrt(1 / 12)))
            else:
                out = classic.richardson_lucy(degraded, k)
            assert out.shape == clean.shape and out.dtype == np.float32
            before, after = psnr(degraded, clean), psnr(quantize_8bit(out), clean)
            assert after > before + 0.5, (method, i, before, after)


def test_wiener_constant_nsr_and_validation(clean_images):
    clean = clean_images[0]
    k = gaussian_kernel(1.5)
    degraded = quantize_8bit(blur(clean, k))
    out = classic.wiener_deconvolve(degraded, k, nsr=1e-3)
    assert psnr(quantize_8bit(out), clean) > psnr(degraded, clean)
    with pytest.raises(ValueError):
        classic.wiener_deconvolve(degraded, k)  # neither nsr nor sigma
    with pytest.raises(ValueError):
        classic.wiener_deconvolve(degraded, np.zeros((3, 3)), sigma=1.0)


def test_even_kernel_keeps_alignment(clean_images):
    """An even-sized kernel is centred like degradations.blur centres it: no half-pixel shift."""
    clean = clean_images[1]
    k = np.ones((4, 6), np.float32) / 24
    degraded = quantize_8bit(blur(clean, k))
    out = quantize_8bit(classic.wiener_deconvolve(degraded, k, sigma=0.3))
    shifted = max(psnr(np.roll(out, s, axis=a), clean) for a in (0, 1) for s in (-1, 1))
    assert psnr(out, clean) > shifted + 1.0


def test_rl_zero_iterations_is_identity(clean_images):
    clean = clean_images[2]
    out = classic.richardson_lucy(clean, gaussian_kernel(1.0), iterations=0)
    np.testing.assert_allclose(out, np.clip(clean, 1e-6, None), atol=1e-6)


@pytest.mark.parametrize("method", ["nlm_opencv", "nlm_opencv_lab", "nlm_skimage", "wavelet_denoise"])
def test_denoisers_improve_psnr_at_sigma_25(clean_images, method):
    pytest.importorskip("cv2" if method.startswith("nlm_opencv") else "skimage")
    if method == "wavelet_denoise":
        pytest.importorskip("pywt")
    if method == "nlm_opencv_lab":
        def fn(img, sigma):
            return classic.nlm_opencv(img, sigma, colorspace="lab")
    else:
        fn = getattr(classic, method)
    for i, clean in enumerate(clean_images):
        noisy = quantize_8bit(add_gaussian_noise(clean, 25.0, np.random.default_rng(10 + i)))
        out = fn(noisy, 25.0)
        assert out.shape == clean.shape and out.dtype == np.float32
        before, after = psnr(noisy, clean), psnr(quantize_8bit(out), clean)
        assert after > before + 2.0, (method, i, before, after)


def test_denoisers_accept_single_channel(clean_images):
    gray = clean_images[0].mean(axis=2, keepdims=True)
    noisy = quantize_8bit(add_gaussian_noise(gray, 25.0, np.random.default_rng(0)))
    for fn in (classic.nlm_opencv, classic.nlm_skimage, classic.wavelet_denoise):
        out = fn(noisy, 25.0)
        assert out.shape == gray.shape
        assert psnr(quantize_8bit(out), gray) > psnr(noisy, gray)


def test_nlm_opencv_rejects_unknown_colorspace(clean_images):
    with pytest.raises(ValueError, match="colorspace"):
        classic.nlm_opencv(clean_images[0], 25.0, colorspace="hsv")
