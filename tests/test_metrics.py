"""edge_runtime.metrics: PSNR and Gaussian-window SSIM in numpy, checked against scikit-image."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_runtime.metrics import psnr, ssim

skmetrics = pytest.importorskip("skimage.metrics")
skdata = pytest.importorskip("skimage.data")


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    return float(skmetrics.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range,
        channel_axis=2 if a.ndim == 3 else None))


def noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return np.clip(clean + np.random.default_rng(seed).normal(0.0, sigma, clean.shape), 0.0, 1.0)


def cases():
    rng = np.random.default_rng(0)
    astronaut = skdata.astronaut()[100:260, 150:330] / 255.0
    coffee = skdata.coffee()[60:200, 200:300] / 255.0
    camera = skdata.camera()[200:330, 180:350] / 255.0
    yield "random colour", rng.random((37, 53, 3)), rng.random((37, 53, 3))
    yield "random gray HxW", rng.random((24, 31)), rng.random((24, 31))
    yield "astronaut noisy", astronaut, noisy(astronaut, 0.1, 1)
    yield "coffee 8-bit noisy", coffee, np.round(noisy(coffee, 25 / 255, 2) * 255) / 255
    yield "coffee float32", coffee.astype(np.float32), noisy(coffee, 0.05, 3).astype(np.float32)
    yield "camera gray HxW", camera, noisy(camera, 0.08, 4)
    yield "camera gray HxWx1", camera[..., None], noisy(camera, 0.08, 4)[..., None]
    yield "camera shifted", camera, np.roll(camera, 1, axis=1)
    yield "minimum 11x11", camera[:11, :11], noisy(camera[:11, :11], 0.2, 5)


@pytest.mark.parametrize("name,a,b", list(cases()), ids=[c[0] for c in cases()])
def test_psnr_and_ssim_match_scikit_image(name, a, b):
    assert psnr(a, b) == pytest.approx(skmetrics.peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-6)
    assert abs(ssim(a, b) - sk_ssim(a, b)) < 1e-4
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)


def test_ssim_on_the_0_255_scale_matches_scikit_image_uint8():
    a = skdata.chelsea()[50:150, 100:220]
    b = np.clip(a.astype(np.int16) + np.random.default_rng(6).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ref = float(skmetrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                channel_axis=2))  # uint8: data range 255
    assert abs(ssim(a, b, data_range=255) - ref) < 1e-4
    assert psnr(a, b, peak=255) == pytest.approx(skmetrics.peak_signal_noise_ratio(a, b), abs=1e-6)
    # the same images on the 0-1 scale give the same figures
    assert ssim(a / 255.0, b / 255.0) == pytest.approx(ssim(a, b, data_range=255), abs=1e-9)


def test_identical_images_and_errors():
    img = skdata.astronaut()[:32, :32] / 255.0
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12) and psnr(img, img) == float("inf")
    assert ssim(img, 1.0 - img) < 0.5
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(img, img[:, :31])
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(img, img[:, :31])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(img[:10], img[:10])
    with pytest.raises(ValueError, match="HxW"):
        ssim(img[None], img[None])


def test_metrics_import_nothing_heavy():
    code = ("import sys, edge_runtime.metrics as m, numpy as np; m.ssim(np.ones((16, 16)), np.ones((16, 16))); "
            "print(sorted(k for k in ('scipy', 'skimage', 'torch', 'cv2') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
