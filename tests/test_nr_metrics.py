"""NIQE and BRISQUE (train.nr_metrics) on fixed images: published values, distortion ordering, parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from train import nr_metrics as nr

SET14 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Set14"
#: MATLAB R2021a, LIVE NIQE code on the Y channel of Set14's baboon (published with BasicSR's niqe.py).
BABOON_NIQE_MATLAB = 5.72957338


def _photos() -> dict[str, np.ndarray]:
    data = pytest.importorskip("skimage.data")
    return {n: getattr(data, n)().astype(np.float32) / 255 for n in ("astronaut", "coffee")}


def _noisy(img: np.ndarray, sigma: float = 25.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(img + rng.normal(0, sigma / 255, img.shape), 0, 1).astype(np.float32)


def _blurred(img: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(img, (sigma, sigma, 0)).astype(np.float32)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return _photos()


def test_niqe_clean_photo_beats_its_noisy_and_blurred_versions(photos):
    for name, clean in photos.items():
        c, n, b = nr.niqe(clean), nr.niqe(_noisy(clean)), nr.niqe(_blurred(clean))
        # measured: astronaut 3.07 / 10.00 / 7.17, coffee 4.06 / 10.74 / 7.92
        assert 2.0 < c < 5.0, (name, c)
        assert n > c + 4.0 and b > c + 2.5, (name, c, n, b)


def test_brisque_clean_photo_beats_its_noisy_and_blurred_versions(photos):
    for name, clean in photos.items():
        c, n, b = nr.brisque(clean), nr.brisque(_noisy(clean)), nr.brisque(_blurred(clean))
        # measured: astronaut 2.72 / 67.66 / 61.89, coffee 3.00 / 65.49 / 69.87
        assert -5.0 < c < 15.0, (name, c)
        assert n > c + 40.0 and b > c + 40.0, (name, c, n, b)


def test_scores_are_frozen_on_the_astronaut(photos):
    """Regression anchors: any change to the feature pipeline or parameters moves these."""
    img = photos["astronaut"]
    assert nr.niqe(img) == pytest.approx(3.0666, abs=1e-3)
    assert nr.brisque(img) == pytest.approx(2.7214, abs=1e-3)


@pytest.mark.skipif(not (SET14 / "baboon.bmp").is_file(), reason=f"Set14 not found at {SET14}")
def test_niqe_matches_the_published_matlab_value_on_baboon():
    from train.data import load_image

    img = load_image(SET14 / "baboon.bmp")
    # measured 5.72996 (BasicSR's Python port reports 5.72958): 0.007% from MATLAB
    assert nr.niqe(img, luma="y") == pytest.approx(BABOON_NIQE_MATLAB, abs=2e-3)


def test_imresize_half_keeps_constants_and_ramps_like_matlab():
    flat = np.full((20, 30), 7.0)
    np.testing.assert_allclose(nr.imresize_half(flat), 7.0, rtol=0, atol=1e-12)
    ramp = np.tile(np.arange(40, dtype=np.float64), (8, 1))
    out = nr.imresize_half(ramp)
    assert out.shape == (4, 20)
    # output sample j (0-based) sits at input coordinate 2j + 0.5; the cubic kernel is exact on
    # lines away from the mirrored borders
    np.testing.assert_allclose(out[:, 3:-3], np.tile(2 * np.arange(3, 17) + 0.5, (4, 1)), atol=1e-9)


def test_aggd_fit_recovers_gaussian_and_laplacian_shapes():
    rng = np.random.default_rng(1)
    rows = np.stack([rng.normal(0, 2.0, 200_000), rng.laplace(0, 1.0, 200_000)])
    alpha, left, right = nr.aggd_fit(rows)
    assert alpha[0] == pytest.approx(2.0, abs=0.05)
    assert alpha[1] == pytest.approx(1.0, abs=0.05)
    assert left[0] == pytest.approx(2.0, rel=0.02) and right[0] == pytest.approx(2.0, rel=0.02)
    skewed = np.where(rows[0] < 0, rows[0] * 0.5, rows[0])[None]
    _, l2, r2 = nr.aggd_fit(skewed)
    assert l2[0] / r2[0] == pytest.approx(0.5, rel=0.02)
    a, std = nr.ggd_fit(rows[1])
    assert a == pytest.approx(1.0, abs=0.05) and std == pytest.approx(np.sqrt(2.0), rel=0.02)


def test_too_small_or_flat_images_are_refused_not_scored():
    with pytest.raises(nr.MetricError, match="two 96x96 blocks"):
        nr.niqe(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(nr.MetricError, match="flat"):
        nr.niqe(np.full((200, 200, 3), 0.5, np.float32))
    with pytest.raises(nr.MetricError, match="16x16"):
        nr.brisque(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(nr.MetricError, match="flat"):
        nr.brisque(np.full((64, 64, 3), 0.5, np.float32))


def test_lpips_orders_noisy_after_clean_when_its_weights_are_here(photos):
    score, why = nr.lpips_scorer("alex")
    if score is None:
        pytest.skip(f"LPIPS unavailable: {why}")
    clean = photos["astronaut"][:128, :128]
    assert score(clean, clean) == pytest.approx(0.0, abs=1e-6)
    assert score(_noisy(clean), clean) > score(_blurred(clean, 0.5), clean) > 0.0


def test_lpips_reason_names_the_missing_piece():
    score, why = nr.lpips_scorer("alex")
    if score is not None:
        pytest.skip("LPIPS is available here")
    assert "lpips" in why or "weights" in why
    assert nr.lpips_scorer("resnet")[1].startswith("unknown LPIPS backbone")
