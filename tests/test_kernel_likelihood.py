"""The marginal-likelihood pick among blur kernels: prefers the true blur, ignores translation, refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.kernel_likelihood import kernel_cost, kernel_costs
from edge_runtime.kernels import disk_kernel, linear_motion_kernel
from train.degradations import add_gaussian_noise, blur, quantize_8bit

skdata = pytest.importorskip("skimage.data")
SIGMA = 2.55


def _blurred_grey(kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    clean = skdata.astronaut()[:256, 100:356].astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    return quantize_8bit(add_gaussian_noise(blur(clean, kernel.astype(np.float32)), SIGMA, rng)).mean(axis=2)


def _frame(kernel: np.ndarray, size: int = 21) -> np.ndarray:
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, size - kernel.shape[0] - pad), (pad, size - kernel.shape[1] - pad)))


@pytest.mark.parametrize("true", [linear_motion_kernel(15, 30), disk_kernel(4)])
def test_the_true_kernel_beats_wrong_ones(true):
    """A compact (delta), a mis-oriented and a mis-sized kernel all explain the photo worse."""
    grey = _blurred_grey(true)
    wrong = [np.ones((1, 1)), linear_motion_kernel(15, 120), linear_motion_kernel(7, 30), disk_kernel(8)]
    costs = [kernel_cost(grey, _frame(k), SIGMA) for k in [true, *wrong]]
    assert costs[0] == min(costs)
    assert kernel_costs(grey, [_frame(k) for k in [true, *wrong]], SIGMA) == costs


def test_cost_ignores_where_the_kernel_sits_and_its_scale():
    grey = _blurred_grey(linear_motion_kernel(11, 0))
    k = _frame(linear_motion_kernel(11, 0))
    base = kernel_cost(grey, k, SIGMA)
    assert kernel_cost(grey, np.roll(k, (3, -2), axis=(0, 1)), SIGMA) == pytest.approx(base, abs=1e-9)
    assert kernel_cost(grey, 5.0 * k, SIGMA) == pytest.approx(base, abs=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        kernel_cost(np.zeros((4, 64)), np.ones((3, 3)), SIGMA)
    with pytest.raises(ValueError):
        kernel_cost(np.zeros((64, 64, 3)), np.ones((3, 3)), SIGMA)
    assert kernel_costs(np.zeros((64, 64)), [], SIGMA) == []
