"""Image quality metrics in numpy (no SciPy needed on the board).

The one implementation of PSNR and SSIM in the project: training validation, the export parity
check and the benchmarks use `psnr`; edge-restore-eval reports both `psnr` and `ssim`.
"""

from __future__ import annotations

import numpy as np

#: SSIM constants of Wang et al. (2004): Gaussian window of std 1.5 truncated at 3.5 std (11x11).
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shaped images in [0, peak]."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def _gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)  # as scipy.ndimage.gaussian_filter
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_2d(planes: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable filtering of (N, H, W) planes over H and W, edges reflected about the border
    (d c b a | a b c d: scipy.ndimage's 'reflect', numpy's 'symmetric')."""
    r = len(kernel) // 2
    padded = np.pad(planes, ((0, 0), (r, r), (r, r)), mode="symmetric")
    h, w = planes.shape[1:]
    rows = kernel[0] * padded[:, 0:h, :]
    for i in range(1, len(kernel)):
        rows += kernel[i] * padded[:, i : i + h, :]
    out = kernel[0] * rows[:, :, 0:w]
    for i in range(1, len(kernel)):
        out += kernel[i] * rows[:, :, i : i + w]
    return out


def _ssim_plane(x: np.ndarray, y: np.ndarray, kernel: np.ndarray, data_range: float) -> float:
    stats = _filter_2d(np.stack([x, y, x * x, y * y, x * y]), kernel)
    ux, uy, uxx, uyy, uxy = stats
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy  # population (co)variances
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = len(kernel) // 2
    return float(s[r : s.shape[0] - r, r : s.shape[1] - r].mean(dtype=np.float64))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity of Wang et al. (2004), the standard Gaussian-window form.

    11x11 Gaussian window (std 1.5), K1 = 0.01, K2 = 0.03, population (co)variances; the SSIM map is
    computed with borders reflected and averaged away from a 5-pixel margin; colour images
    (HxWxC) are scored per channel and averaged; grayscale may be HxW or HxWx1. Equal to
    `skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=2)` (channel_axis=None for
    HxW). Sides must be at least 11 pixels.
    """
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    kernel = _gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE)
    if min(a.shape[:2]) < len(kernel):
        raise ValueError(f"SSIM needs images of at least {len(kernel)}x{len(kernel)} pixels, got {a.shape[:2]}")
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    scores = [_ssim_plane(x[..., c], y[..., c], kernel, float(data_range)) for c in range(x.shape[2])]
    return float(np.mean(scores))
