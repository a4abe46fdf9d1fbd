"""Training inputs for a plug-and-play prior: what the denoiser sees inside the board's HQS loop.

The shipped denoisers learned white noise on clean photos. Inside plug-and-play deconvolution
(`edge_runtime.deblur`) the prior instead sees the data step's output: the image with the
measurement noise amplified and coloured by 1 / K, ringing where the kernel has near-zero
frequencies, and, from the second iteration on, its own previous output wherever the data are weak.
A prior trained on exactly that (task `pnp-prior`) is still a plain RGB-in, RGB-out denoiser, so it
runs through the same QAT -> ONNX -> INT8 path and the same tiler.

Each sample: a random kernel (camera shake, linear motion, defocus or Gaussian, up to
`PNP_KERNEL_MAX` px), circular blur of the clean patch (so the data step's FFT model is exact),
Gaussian noise, 8-bit rounding; then an HQS schedule of random length run for a random number of
iterations with `prior` (the model being trained, no gradient) as the denoiser, as
`edge_runtime.deblur.pnp_deconvolve_block` runs it (8-bit pixels in and out), except that every
prior step is taken in full (the board relaxes the steps below 5/255). The input is the 8-bit
data-step output of the last iteration reached; the target is the clean patch. Without a prior
only first-iteration inputs are made (QAT calibration). Training validates whole deconvolutions (:func:`pnp_validation_psnr`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from edge_runtime.classic import _otf
from edge_runtime.contract import PIXEL_MAX
from edge_runtime.deblur import PnPSchedule, hqs_data_spectrum
from edge_runtime.kernels import linear_motion_kernel

from .degradations import DegradationConfig, defocus_kernel, gaussian_kernel, motion_kernel, quantize_8bit

#: Largest kernel side drawn (the Levin kernels reach 27 px, camera shake in phones ~30).
PNP_KERNEL_MAX = 31

#: Images per validation set for pnp-prior runs: a whole deconvolution is 4 prior passes, and 8
#: photos keep one validation near 20 s on a CPU core (60 s fake-quantized).
PNP_VAL_IMAGES = 8

Prior = Callable[[np.ndarray], np.ndarray]  # NxHxWxC float32 8-bit-rounded in, same shape out


def random_pnp_kernel(rng: np.random.Generator, max_size: int = PNP_KERNEL_MAX) -> np.ndarray:
    """Half camera shake (random trajectory in 13..max_size px), a quarter uniform linear motion
    (5..max_size-2 px, any angle), the rest defocus or Gaussian blur; float64, sum 1."""
    u = rng.random()
    if u < 0.5:
        size = int(rng.integers(6, max_size // 2 + 1)) * 2 + 1
        k = motion_kernel(rng, size)
    elif u < 0.75:
        k = linear_motion_kernel(rng.uniform(5.0, max_size - 2.0), rng.uniform(0.0, 180.0))
    elif u < 0.875:
        k = defocus_kernel(rng.uniform(1.0, 6.0))
    else:
        k = gaussian_kernel(rng.uniform(0.6, 3.0))
    k = np.asarray(k, dtype=np.float64)
    return k / k.sum()


def _irfft(spectrum: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.fft.irfft2(spectrum, s=shape, axes=(0, 1)).astype(np.float32)


def _rfft(img: np.ndarray) -> np.ndarray:
    return np.fft.rfft2(img, axes=(0, 1))


def pnp_batch(clean: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator,
              prior: Prior | None = None, final: bool = False) -> np.ndarray:
    """Prior inputs (8-bit rounded) for a batch of clean NxHxWxC float32 patches; see the module
    docstring. `prior` maps a stack of 8-bit-rounded images to their denoised versions. With
    `final`, every schedule runs to its end and the result is what the board returns: the data
    step after the last prior step."""
    n, h, w, _ = clean.shape
    lo, hi = cfg.pnp_iterations
    h2s, ky, alphas, stops, z = [], [], [], [], []
    for img in clean:
        otf = _otf(random_pnp_kernel(rng, (min(PNP_KERNEL_MAX, h, w) - 1) // 2 * 2 + 1), (h, w))
        otf = otf.astype(np.complex64)[..., None]
        sigma = rng.uniform(*cfg.pnp_sigma)
        noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / PIXEL_MAX)
        y = quantize_8bit(_irfft(_rfft(img) * otf, (h, w)) + noise)
        iterations = int(rng.integers(lo, hi + 1))
        # the board's schedule, planned with the 8-bit rounding noise included as the board does
        alphas.append(PnPSchedule(iterations=iterations).alphas(math.hypot(sigma, 1 / math.sqrt(12))))
        stop = int(rng.integers(1, iterations + 1))  # drawn either way: the same seed, the same blur
        stops.append(iterations + 1 if final else stop if prior is not None else 1)
        h2s.append(otf.real ** 2 + otf.imag ** 2)  # |K|^2, once per sample, not per iteration
        ky.append(np.conj(otf) * _rfft(y))
        z.append(y)  # HQS starts from the blurred image itself
    inputs = np.empty_like(clean)
    for t in range(max(stops)):
        active = [i for i in range(n) if stops[i] > t]
        xs = {}
        for i in active:
            a = alphas[i][min(t, len(alphas[i]) - 1)]  # the last step reuses the last a
            xs[i] = quantize_8bit(_irfft(hqs_data_spectrum(ky[i], h2s[i], _rfft(z[i]), a), (h, w)))
            if stops[i] == t + 1:
                inputs[i] = xs[i]
        going_on = [i for i in active if stops[i] > t + 1]
        if going_on:
            denoised = prior(np.stack([xs[i] for i in going_on]))
            for i, d in zip(going_on, denoised):
                z[i] = d
    return inputs


def pnp_validation_psnr(prior: Prior, cleans: list[np.ndarray], cfg: DegradationConfig, seed: int = 0) -> float:
    """Mean PSNR of whole HQS runs (the board's default schedule, `prior` in the loop) on fixed,
    seeded blurs of `cleans` (HxWxC float32 images): what a pnp-prior model is for, where scoring
    its first-iteration inputs alone fell while the deconvolution improved."""
    from edge_runtime.deblur import DEFAULT_ITERATIONS
    from edge_runtime.metrics import psnr

    rng = np.random.default_rng(seed)
    fixed = replace(cfg, pnp_iterations=(DEFAULT_ITERATIONS, DEFAULT_ITERATIONS))
    return float(np.mean([psnr(pnp_batch(c[None], fixed, rng, prior, final=True)[0], c) for c in cleans]))
