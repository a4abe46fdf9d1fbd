"""Which of several blur-kernel estimates explains a blurred image best (numpy only).

    from edge_runtime.kernel_likelihood import kernel_costs
    costs = kernel_costs(grey_crop, [k1, k2, k3], noise_sigma=2.55)   # the lowest fits best

A blind estimator's runs with different settings fail on different photos (a low threshold keeps
the faint tail of a long shake path and lets texture in; a small support resists texture and
cannot hold a long path). The pick between them is made by the Gaussian marginal likelihood of
the blurred image given each kernel, with the image integrated out (Levin et al., "Efficient
marginal likelihood optimization in blind deconvolution", CVPR 2011, argue for marginalising the
image rather than jointly maximising over it). Under a Gaussian image prior with the 1/|f|^2 power
spectrum of photos (white gradients), each Fourier coefficient of y = k * x + n is independent
with variance

    v(f) = A |K(f)|^2 / |D(f)|^2 + s^2,    D: the finite-difference operator,

so -log p(y | k) is, per frequency, |Y(f)|^2 / v(f) + log v(f), with the prior's scale A fitted
per kernel. A kernel too compact predicts high frequencies the photo lacks (the log term); one
with misplaced zeros predicts none where the photo has some (the first term). The model is crude
(photos are not Gaussian, nor isotropic), so it only chooses among the estimator's own runs; there
its pick beat every single run on the tuning set (docs/deblur.md).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kernel_cost", "kernel_costs"]

#: Frequencies below this many cycles per crop side are left out: there the photo's content, not
#: the power law, sets the spectrum, and every kernel passes them almost unchanged.
LOWEST_CYCLES = 1.5
#: The prior's scale A is fitted over log10 A in this range (a [0, 1] photo's gradient energy per
#: pixel lies far inside it), by a grid refined around its best point a few times.
LOG_SCALE_RANGE = (-12.0, 2.0)
SCALE_GRID = 15
SCALE_ROUNDS = 4
#: 8-bit rounding noise (0-255 scale), added to the given noise so that no frequency has zero
#: variance when the noise is given as 0.
ROUNDING_SIGMA = 1.0 / math.sqrt(12.0)


def _spectrum_terms(region: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrum of the Hann-windowed, mean-removed region, |D(f)|^2, and the mask of the
    frequencies used (half plane, rfft2 layout)."""
    h, w = region.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.rfft2((region - region.mean()) * window)) ** 2 / float((window**2).sum())
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    d2 = 4.0 * np.sin(np.pi * fy) ** 2 + 4.0 * np.sin(np.pi * fx) ** 2
    used = np.hypot(fy, fx) > LOWEST_CYCLES / min(h, w)
    return power, d2, used


def _fitted_cost(power: np.ndarray, shape_term: np.ndarray, noise_var: float) -> float:
    """min over A of mean(P / v + log v), v = A * shape_term + noise_var."""
    lo, hi = LOG_SCALE_RANGE
    best = math.inf
    for _ in range(SCALE_ROUNDS):
        grid = np.linspace(lo, hi, SCALE_GRID)
        costs = []
        for log_a in grid:
            v = shape_term * 10.0**log_a + noise_var
            costs.append(float(np.mean(power / v + np.log(v))))
        j = int(np.argmin(costs))
        best = min(best, costs[j])
        step = grid[1] - grid[0]
        lo, hi = grid[j] - step, grid[j] + step
    return best


def kernel_costs(region: np.ndarray, kernels: list[np.ndarray], noise_sigma: float) -> list[float]:
    """:func:`kernel_cost` of each kernel on the same region (its spectrum computed once)."""
    region = np.asarray(region, np.float64)
    if region.ndim != 2 or min(region.shape) < 8:
        raise ValueError(f"kernel_cost: expected a grey HxW region of at least 8 px a side, got shape {region.shape}")
    power, d2, used = _spectrum_terms(region)
    power, d2 = power[used], d2[used]
    noise_var = (float(noise_sigma) ** 2 + ROUNDING_SIGMA**2) / 255.0**2
    out = []
    for k in kernels:
        # |K(f)| does not depend on where the kernel sits in the frame, so no centring is needed
        k2 = np.abs(np.fft.rfft2(np.asarray(k, np.float64) / float(np.sum(k)), s=region.shape)) ** 2
        out.append(_fitted_cost(power, k2[used] / d2, noise_var))
    return out


def kernel_cost(region: np.ndarray, kernel: np.ndarray, noise_sigma: float) -> float:
    """Negative log marginal likelihood per frequency of the grey `region` (HxW, [0, 1]) blurred by
    `kernel` with white noise of `noise_sigma` (0-255 scale), under a 1/|f|^2 Gaussian image prior
    whose scale is fitted. Lower fits better; only differences between kernels on the same region
    mean anything."""
    return kernel_costs(region, [kernel], noise_sigma)[0]
