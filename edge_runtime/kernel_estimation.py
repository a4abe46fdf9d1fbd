"""Blind blur-kernel estimation from the blurred image alone (numpy only).

    from edge_runtime.kernel_estimation import estimate_kernel, estimate_linear_motion
    length, angle = estimate_linear_motion(photo)    # motion:estimate (px, degrees in [0, 180))
    kernel = estimate_kernel(photo, 31)              # estimate: 31x31, float64, sum 1, centred

Two methods:

* :func:`estimate_linear_motion` fits only the length and angle of a uniform linear motion. The
  log power spectrum of a length-L box blur has parallel lines of zeros every 1/L cycles/px across
  the motion direction, so the cepstrum (inverse FFT of the log spectrum) has a strong negative
  peak at distance L along that direction. A search of the cepstrum along lines through the origin
  gives a coarse (L, angle); a correlation of the log spectrum with the predicted sinc pattern on
  a fine grid refines it to sub-pixel length and sub-degree angle.
* :func:`estimate_kernel` is the classic coarse-to-fine MAP estimate with a sparse (L0) gradient
  prior (Pan et al., "Deblurring Text Images via L0-Regularized Intensity and Gradient Prior",
  CVPR 2014; Xu et al., "Unnatural L0 Sparse Representation", CVPR 2013). Naive MAP with a
  natural-image prior prefers the blurred image and a delta kernel (Levin et al., CVPR 2011); the
  L0 latent image keeps only salient edges, which a delta kernel cannot explain, so alternating
  it with a least-squares kernel converges to the blur. Each level alternates
  (1) the latent image: min_x |k * x - y|^2 + lambda |grad x|_0 by half-quadratic splitting in
      the Fourier domain, and
  (2) the kernel: min_k sum_d |k * d x - d y|^2 + gamma |k|^2 over the kernel's support in the
      gradient domain, the normal equations built from FFT auto/cross-correlations and solved by
      warm-started conjugate gradients (the matrix applied as a small FFT convolution), then
      positivity, thresholding of small values, removal of weak isolated components and
      renormalisation,
  with lambda decreasing; the kernel is upsampled to the next, finer level and recentred. A last
  full-resolution pass recomputes the latent image with the final kernel and re-solves the kernel
  over its (slightly grown) support with an active-set positivity constraint.

By default :func:`estimate_kernel` runs that estimate three times (as set, with a low threshold,
with a smaller support) and keeps one run's kernel: the one
whose marginal likelihood (:mod:`edge_runtime.kernel_likelihood`) and L0 energy
(:func:`l0_energy`), standardised over the runs, sum lowest (docs/deblur.md).

Both work on one grey crop (the one with the most edge content) so the cost is bounded whatever
the image size. Kernels follow edge_runtime.kernels: odd sides, centred on ((h-1)//2, (w-1)//2),
sum 1, and the motion angle is counter-clockwise from +x with image rows growing downwards.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace

import numpy as np

from .classic import edge_taper_pad, estimate_noise_sigma
from .errors import KernelError
from .kernel_likelihood import kernel_costs

__all__ = ["estimate_linear_motion", "estimate_kernel", "estimate_kernel_candidates", "KernelCandidates",
           "KernelEstimateSettings"]

#: Side of the grey crop the linear-motion fit reads: large enough that the spectrum resolves the
#: sinc zeros of a 63 px blur (several bins apart), small enough to cost ~0.1 s.
MOTION_CROP = 256
#: Angle step (degrees) and radius step (px) of the coarse cepstrum search; the spectral fit
#: refines both, so these only need to land within its basin (about half a zero spacing).
CEPSTRUM_ANGLE_STEP = 1.0
CEPSTRUM_RADIUS_STEP = 0.5
#: Rounds of the spectral refinement: (half-width of the length window px, length step,
#: half-width of the angle window degrees, angle step). Each round centres on the last best.
SPECTRAL_REFINE_ROUNDS = ((1.5, 0.25, 3.0, 0.5), (0.3, 0.05, 0.6, 0.1))
#: Well separated cepstrum minima refined and compared by the spectral fit (texture can make a
#: competing peak; 3 caught every such case in development runs on skimage photos).
CEPSTRUM_CANDIDATES = 3
#: Radius (frequency bins) of the local mean removed from the log spectrum: 7x7 bins spans the
#: zero spacing (crop / length = 4-85 bins) for long blurs and keeps the dips for short ones.
SPECTRUM_BOX_RADIUS = 3
#: A frequency counts in the fit when its local mean power is this many times the noise floor.
SIGNAL_TO_NOISE_FLOOR = 3.0
#: Floor of the predicted |H|^2 in the log spectrum model: the noise floor relative to the signal
#: at mid frequencies for 1% noise (zeros of the sinc are never deeper than the noise).
SPECTRUM_MODEL_FLOOR = 1e-2

#: Grey crop side for estimate_kernel's default (`crop`); the work is O(crop^2 log crop) per
#: iteration. 512 (3.7 s on one core for a 512x512 photo) against 256 (1.8 s): error ratio <= 3
#: on 94 / 88% of the tuning photos (Levin / 12 kernels, PnP) instead of 75 / 81%; docs/deblur.md.
DEFAULT_CROP = 512
#: Pyramid ratio between levels and the smallest kernel side, as in Pan et al.'s code.
PYRAMID_RATIO = math.sqrt(0.5)
COARSEST_KERNEL = 5
#: Half-quadratic splitting of the latent step: beta from 2 lambda, times HQS_KAPPA per step, up
#: to HQS_BETA_MAX (Xu et al. use 2; 3 needs a third fewer steps with the same error ratios in sweeps).
HQS_KAPPA = 3.0
HQS_BETA_MAX = 1e5
#: Conjugate-gradient steps of each kernel solve (warm-started at the current kernel), and of each
#: active-set round of the final refinement.
CG_ITERATIONS = 30
REFINE_CG_ITERATIONS = 50
#: Overlap of the consensus quadrants past the crop's middle, in kernel sizes: each quadrant sees
#: whole blurred edges on both sides of its cut. Below QUADRANT_MIN_SIDE px a quadrant holds too
#: few edges for an estimate worth a vote (the 143 px quadrants of a 256 px photo in
#: tests/test_kernel_estimation.py voted a good full-crop estimate out), so smaller crops skip it.
QUADRANT_OVERLAP = 1
QUADRANT_MIN_SIDE = 160
#: Edge selection (KernelEstimateSettings.edge_selection): Xu & Jia's 5x5 window and their 0.5,
#: which keeps flat regions (a summed gradient far below it, on [0, 1] intensities) out.
EDGE_WINDOW_RADIUS = 2
EDGE_SELECTION_EPS = 0.5


@dataclass(frozen=True)
class KernelEstimateSettings:
    """The tuned constants of :func:`estimate_kernel`; the defaults were chosen on the tuning set
    (CBSD432 photos outside its held-out slice, Levin and 12-kernel blurs, 1% noise; the numbers
    in docs/deblur.md). `scripts/kernel_estimation_sweep.py --setting NAME=VALUE` sweeps them.

    iterations_per_level: alternations of latent image and kernel per pyramid level (Pan et al.: 5).
    lambda_start, lambda_decay, lambda_min: the L0 gradient weight starts at lambda_start, is
      divided by lambda_decay after every alternation and never drops below lambda_min (Pan et
      al.'s defaults for natural images, [0, 1] intensities).
    noise_lambda_factor: nor below this times the noise variance ([0, 1] scale), so noise gradients
      are not kept as edges. Sweep with kernel_tikhonov 2: 5 / 10 / 20 / 40 -> error ratio <= 3 on
      82 / 82 / 93 / 89% of the crops; lambda_start 2e-3 / 8e-3 -> 75 / 89%.
    kernel_tikhonov: weight on |k|^2 in the kernel least squares, per 10^4 gradient pixels (so it
      scales with the crop at every level); Pan et al. use 2 for whole images. Sweep (28
      non-held-out CBSD432 crops, Levin + 12 kernels, noise_lambda_factor 20): 2 -> mean 25.24 dB,
      worst error ratio 19.9; 4 -> 25.23, 14.3; 8 -> 25.44, 6.3 (Wiener with the true kernels 27.43).
    threshold: kernel values below this fraction of the maximum are zeroed after each solve
      (Pan et al.: 0.05).
    min_component: 8-connected kernel components holding less than this share of the mass are
      removed: shake is one connected path, isolated specks are noise (Pan et al.: 0.1).
    refine_dilation, refine_rounds, refine_tikhonov: the final full-resolution refinement grows the
      support by refine_dilation px and runs refine_rounds active-set rounds (0 skips it) with this
      Tikhonov weight (as kernel_tikhonov).
    consensus: also estimate on the crop's four overlapping quadrants and return the medoid of the
      five estimates (the one closest, up to a translation, to the others). A failed estimate
      takes the shape of the crop's texture, which differs from quadrant to quadrant, while the
      blur is the same in all of them. About twice the time; off, as it was not better on the
      tuning set (docs/deblur.md).
    candidates: also estimate with threshold `candidate_threshold`, and with a support of
      `candidate_size_ratio` x the kernel size (rounded to odd, >= 3), and return the kernel the
      pick prefers (the blurred crop's Gaussian marginal likelihood,
      :mod:`edge_runtime.kernel_likelihood`, with the L0 check of `pick_map_weight`). Each run
      fails on different photos: the low threshold keeps a long path's faint tail, the small
      support resists texture. About 2.5 times the time of one run (three runs).
    edge_selection: > 0 turns on Xu & Jia's edge selection (ECCV 2010) at this threshold on
      their r-map, |sum of grad y| over a window against the sum of |grad y|: the kernel least
      squares of the pyramid levels then uses only the latent gradients where the blurred
      gradients in a 5x5 window point one way (a blurred edge), not where they cancel (texture
      finer than the window). Off: on the tuning set it moved single estimates by up to 3 dB
      either way and left the mean where it was (docs/deblur.md).
    candidate_edge_selection: > 0 (with candidates) adds every run again with edge_selection at
      this value, for six runs to pick from (about 1.8 times the time of three). Off: with the L0
      check below the six runs raised the pick on the tuning set, but on Set14 the edge-selection
      runs were picked, and lost 1-2 dB, on fine texture under the smallest 12-kernel blurs
      (docs/deblur.md).
    pick_map_weight: > 0 picks among the runs by the marginal cost plus this weight times each
      run's L0 energy (the estimator's own objective, |k * x - y|^2 + lambda |grad x|_0 with x the
      L0 latent image for that kernel), both standardised over the runs; 0 picks by the marginal
      cost alone. The marginal likelihood, where it was wrong, mostly preferred the more diffuse
      kernel; the L0 energy leans the other way (a MAP estimate prefers sharp explanations).
    no_blur_peak: a kept kernel whose largest value holds at least this share of its mass is
      taken for no blur, and a delta kernel is returned (deconvolution then only denoises). The
      estimator cannot resolve blur much below a pixel: on 8 sharp tuning photos (1% noise) it
      kept kernels peaking at 0.30-0.69, and PnP with them lost 7.5 dB against the input; every
      run on the Levin and 12-kernel blurs of the tuning set peaked at 0.30 at most, and on a
      0.7 px Gaussian blur at 0.32 (docs/deblur.md). 1 turns the check off (a delta's peak is 1).
    """

    iterations_per_level: int = 5
    lambda_start: float = 4e-3
    lambda_decay: float = 1.1
    lambda_min: float = 1e-4
    noise_lambda_factor: float = 20.0
    kernel_tikhonov: float = 8.0
    threshold: float = 0.05
    min_component: float = 0.1
    refine_dilation: int = 1
    refine_rounds: int = 3
    refine_tikhonov: float = 2.0
    consensus: bool = False
    candidates: bool = True
    candidate_threshold: float = 0.02
    candidate_size_ratio: float = 0.68
    edge_selection: float = 0.0
    candidate_edge_selection: float = 0.0
    pick_map_weight: float = 1.0
    no_blur_peak: float = 0.4

    def with_overrides(self, texts: list[str]) -> "KernelEstimateSettings":
        """A copy with NAME=VALUE texts applied (VALUE in the field's type; booleans as
        true/false/1/0), checked; KernelError (one line) on an unknown name or a bad value."""
        kinds = {f.name: type(f.default) for f in fields(self)}
        changes: dict[str, bool | int | float] = {}
        for text in texts:
            name, sep, value = text.partition("=")
            if not sep or name not in kinds:
                raise KernelError(f"estimate: expected a setting NAME=VALUE with NAME one of {', '.join(kinds)}, got {text!r}")
            try:
                if kinds[name] is bool:
                    if value.lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    changes[name] = value.lower() in ("true", "1")
                else:
                    changes[name] = kinds[name](value)
            except ValueError:
                raise KernelError(f"estimate: setting {name} needs a {kinds[name].__name__}, got {value!r}") from None
        return replace(self, **changes).check()

    def check(self) -> "KernelEstimateSettings":
        """Self, or KernelError (one line) naming the first field out of range."""
        for f in fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise KernelError(f"estimate: setting {f.name} must be True or False, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise KernelError(f"estimate: setting {f.name} must be a finite number, got {value!r}")
            elif kind is int and not isinstance(value, (int, np.integer)):
                raise KernelError(f"estimate: setting {f.name} must be an integer, got {value!r}")
        positive = ("iterations_per_level", "lambda_start", "lambda_min")
        at_least_zero = ("noise_lambda_factor", "kernel_tikhonov", "refine_dilation", "refine_rounds", "refine_tikhonov",
                         "pick_map_weight")
        for name in positive:
            if getattr(self, name) <= 0:
                raise KernelError(f"estimate: setting {name} must be > 0, got {getattr(self, name)}")
        for name in at_least_zero:
            if getattr(self, name) < 0:
                raise KernelError(f"estimate: setting {name} must be >= 0, got {getattr(self, name)}")
        if self.lambda_decay < 1:
            raise KernelError(f"estimate: setting lambda_decay must be >= 1, got {self.lambda_decay}")
        if not 0 < self.no_blur_peak <= 1:
            raise KernelError(f"estimate: setting no_blur_peak must be in (0, 1], got {self.no_blur_peak}")
        if not 0 < self.candidate_size_ratio <= 1:
            raise KernelError(f"estimate: setting candidate_size_ratio must be in (0, 1], got {self.candidate_size_ratio}")
        for name in ("threshold", "min_component", "candidate_threshold", "edge_selection", "candidate_edge_selection"):
            if not 0 <= getattr(self, name) < 1:
                raise KernelError(f"estimate: setting {name} must be in [0, 1), got {getattr(self, name)}")
        return self


#: The pick's L0 check (KernelEstimateSettings.pick_map_weight): the L0 latent image of each run's
#: kernel at this gradient weight (the estimator's own floor at 1% noise, fixed so the check does
#: not move with the estimated noise), an energy charging PICK_L0_WEIGHT x that weight per gradient
#: above PICK_GRADIENT_FLOOR, and no residual within a kernel size of the padded border.
PICK_LAMBDA = 2e-3
PICK_L0_WEIGHT = 2.0
PICK_GRADIENT_FLOOR = 1e-3

#: Smallest image side accepted, relative to the kernel side: fewer pixels than this cannot
#: constrain the kernel's unknowns.
MIN_IMAGE_TO_KERNEL = 2


# --------------------------------------------------------------------------------------------
# Input checks and crops
# --------------------------------------------------------------------------------------------


def _grey(image: np.ndarray, min_side: int, what: str) -> np.ndarray:
    """HxW or HxWxC (C = 1 or 3) finite image as float64 grey; KernelError (one line) otherwise."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        arr = arr.mean(axis=2) if arr.shape[2] == 3 else arr[..., 0]
    if arr.ndim != 2:
        raise KernelError(f"{what}: expected an HxW or HxWxC (C = 1 or 3) image, got shape {np.shape(image)}")
    if arr.dtype.kind not in "fiu":
        raise KernelError(f"{what}: expected a numeric image, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.asarray(image).dtype == np.uint8:
        arr /= 255.0
    elif np.asarray(image).dtype == np.uint16:
        arr /= 65535.0
    if not np.all(np.isfinite(arr)):
        raise KernelError(f"{what}: the image has NaN or infinite values")
    if min(arr.shape) < min_side:
        raise KernelError(f"{what}: the image ({arr.shape[1]}x{arr.shape[0]}) is smaller than the {min_side} px it needs")
    return arr


def _edge_richest_crop(grey: np.ndarray, size: int) -> np.ndarray:
    """The size x size window (clipped to the image) with the largest sum of gradient magnitudes."""
    h, w = grey.shape
    ch, cw = min(size, h), min(size, w)
    if (ch, cw) == (h, w):
        return grey
    mag = np.zeros_like(grey)
    mag[:, :-1] += np.abs(np.diff(grey, axis=1))
    mag[:-1, :] += np.abs(np.diff(grey, axis=0))
    integral = np.pad(mag.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    stride = max(1, min(ch, cw) // 8)  # an eighth of the crop: finer moves change the sum little
    ys = np.arange(0, h - ch + 1, stride)
    xs = np.arange(0, w - cw + 1, stride)
    sums = (integral[ys[:, None] + ch, xs[None, :] + cw] - integral[ys[:, None], xs[None, :] + cw]
            - integral[ys[:, None] + ch, xs[None, :]] + integral[ys[:, None], xs[None, :]])
    iy, ix = np.unravel_index(np.argmax(sums), sums.shape)
    return grey[ys[iy] : ys[iy] + ch, xs[ix] : xs[ix] + cw]


# --------------------------------------------------------------------------------------------
# Linear motion: cepstrum, then a spectral fit
# --------------------------------------------------------------------------------------------


def _log_power_spectrum(crop: np.ndarray) -> np.ndarray:
    """log |FFT|^2 of the mean-removed, Hann-windowed crop (full plane, unshifted)."""
    h, w = crop.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    spec = np.abs(np.fft.fft2((crop - crop.mean()) * win)) ** 2
    return np.log(spec + 1e-12 * spec.max() + 1e-30)


def _bilinear(plane: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear samples of a periodic plane at fractional (rows, cols)."""
    h, w = plane.shape
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    r0, c0 = r0 % h, c0 % w
    r1, c1 = (r0 + 1) % h, (c0 + 1) % w
    return ((1 - fr) * (1 - fc) * plane[r0, c0] + (1 - fr) * fc * plane[r0, c1]
            + fr * (1 - fc) * plane[r1, c0] + fr * fc * plane[r1, c1])


def _cepstrum_candidates(weighted_spec: np.ndarray, min_length: float, max_length: float) -> list[tuple[float, float]]:
    """Candidate (length, angle) pairs at the most negative cepstrum values along lines through the origin.

    The isotropic part of the cepstrum (the image's own smooth spectrum) is removed by scoring, at
    each radius, how far a value lies below the median over all angles in units of the spread
    (median absolute deviation), so only a directional blur peak stands out; near the origin the
    cepstrum is large in every direction and scores low. Several well separated minima are kept
    because texture can produce a competing peak; the spectral fit decides between them.
    """
    cep = np.real(np.fft.ifft2(weighted_spec))
    angles = np.arange(0.0, 180.0, CEPSTRUM_ANGLE_STEP)
    radii = np.arange(max(min_length, 2.0), max_length + 1.0 + 1e-9, CEPSTRUM_RADIUS_STEP)
    theta = np.radians(angles)[:, None]
    profile = _bilinear(cep, -radii[None, :] * np.sin(theta), radii[None, :] * np.cos(theta))  # rows grow down
    centred = profile - np.median(profile, axis=0, keepdims=True)
    spread = np.median(np.abs(centred), axis=0, keepdims=True) + 1e-12
    z = centred / spread
    candidates: list[tuple[float, float]] = []
    for flat in np.argsort(z, axis=None):
        ia, ir = np.unravel_index(flat, z.shape)
        length, angle = float(radii[ir]), float(angles[ia])
        if all(abs(length - l) > 2 or abs((angle - a + 90) % 180 - 90) > 10 for l, a in candidates):
            candidates.append((length, angle))
        if len(candidates) == CEPSTRUM_CANDIDATES:
            break
    return candidates


def _box_mean(plane: np.ndarray, radius: int) -> np.ndarray:
    """Periodic (2 radius + 1)^2 box mean of a plane."""
    acc = np.zeros_like(plane)
    for dy in range(-radius, radius + 1):
        acc += np.roll(plane, dy, axis=0)
    box = np.zeros_like(plane)
    for dx in range(-radius, radius + 1):
        box += np.roll(acc, dx, axis=1)
    return box / (2 * radius + 1) ** 2


class _SpectralFit:
    """Correlation of the image's log spectrum with the log |H|^2 a linear motion predicts.

    Only frequencies where the image rises clearly above the noise floor count (the sinc's zeros
    are invisible under noise). Both the log spectrum and the model log(sinc^2 + floor) lose their
    local mean (a 7x7-bin box), which keeps the zero lines and drops the smooth 1/f trend of the
    image and of the sinc's envelope; the score is their normalised correlation over those
    frequencies. Everything runs on the centred window of the spectrum that holds them.
    """

    def __init__(self, log_spec: np.ndarray) -> None:
        h, w = log_spec.shape
        centred = np.fft.fftshift(log_spec)
        fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None] * np.ones((1, w))
        fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :] * np.ones((h, 1))
        radius = np.hypot(fy, fx)
        local = _box_mean(centred, SPECTRUM_BOX_RADIUS)
        floor = float(np.median(centred[radius > 0.4]))  # the highest frequencies: white noise + rounding
        # the band where the image's radial mean power is clearly above the noise floor
        bins = np.minimum((radius / 0.5 * 64).astype(int), 64)
        means = np.bincount(bins.ravel(), centred.ravel(), 65) / np.maximum(np.bincount(bins.ravel(), None, 65), 1)
        above = np.nonzero(means[:64] > floor + math.log(SIGNAL_TO_NOISE_FLOOR))[0]
        cutoff = max(0.1, (above.max() + 1) / 128) if above.size else 0.5
        mask = (radius > 2.0 / min(h, w)) & (radius < cutoff)
        rows, cols = np.nonzero(mask)
        if rows.size == 0:  # a flat image: keep the lowest frequencies, the fit will be poor anyway
            mask = (radius > 2.0 / min(h, w)) & (radius < 0.1)
            rows, cols = np.nonzero(mask)
        pad = 2 * SPECTRUM_BOX_RADIUS + 1
        self.window = (slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
                       slice(max(cols.min() - pad, 0), cols.max() + pad + 1))
        self.fy, self.fx = fy[self.window], fx[self.window]
        self.mask = mask[self.window]
        target = (centred - local)[self.window][self.mask]
        self.target = (target - target.mean()) / (np.linalg.norm(target - target.mean()) + 1e-12)
        self.weight = np.fft.ifftshift(np.where(mask, centred - local, 0.0))

    def score(self, length: float, angle: float) -> float:
        t = math.radians(angle)
        u = self.fx * math.cos(t) - self.fy * math.sin(t)  # frequency along the motion (rows grow down)
        # only the zero lines of the sinc, without its 1/u^2 envelope: the envelope's bright central
        # strip would match any straight structure in the scene (a strong edge's spectral line)
        lu = length * u
        model = np.log(np.where(np.abs(lu) < 0.5, 1.0, np.sin(np.pi * lu) ** 2) + SPECTRUM_MODEL_FLOOR)
        m = (model - _box_mean(model, SPECTRUM_BOX_RADIUS))[self.mask]
        m -= m.mean()
        return float(np.dot(self.target, m) / (np.linalg.norm(m) + 1e-12))


def _refine_motion(fit: _SpectralFit, length: float, angle: float, min_length: float,
                   max_length: float) -> tuple[float, float, float]:
    """Alternating 1-D searches of length and angle on shrinking grids; returns (length, angle, score)."""
    best = fit.score(length, angle)
    for half_l, step_l, half_a, step_a in SPECTRAL_REFINE_ROUNDS:
        for _ in range(2):
            for L in np.clip(np.arange(length - half_l, length + half_l + 1e-9, step_l), min_length, max_length):
                s = fit.score(float(L), angle)
                if s > best:
                    best, length = s, float(L)
            for a in np.arange(angle - half_a, angle + half_a + 1e-9, step_a):
                s = fit.score(length, float(a))
                if s > best:
                    best, angle = s, float(a)
    return length, angle, best


def estimate_linear_motion(image: np.ndarray, min_length: float = 3, max_length: float = 63) -> tuple[float, float]:
    """(length px, angle degrees in [0, 180)) of a linear motion blur, from the image alone.

    `image` is HxW or HxWxC (C = 1 or 3), float in [0, 1] (or uint8 / uint16). The angle follows
    `edge_runtime.kernels.linear_motion_kernel` (counter-clockwise from +x, rows grow downwards)
    modulo 180. Raises KernelError (one line) on an unusable image or length range.
    """
    if not (math.isfinite(min_length) and math.isfinite(max_length) and 1 <= min_length < max_length):
        raise KernelError(f"motion:estimate: need 1 <= min_length < max_length, got {min_length}, {max_length}")
    grey = _grey(image, int(math.ceil(2 * max_length)) + 1, "motion:estimate")
    crop = _edge_richest_crop(grey, MOTION_CROP)
    log_spec = _log_power_spectrum(crop)
    fit = _SpectralFit(log_spec)
    # candidates from the plain cepstrum and from the cepstrum of the above-noise band only: each
    # misses some peaks the other finds (texture, strong blur)
    candidates = _cepstrum_candidates(log_spec, min_length, max_length)
    candidates += _cepstrum_candidates(fit.weight, min_length, max_length)
    fits = [_refine_motion(fit, L, a, min_length, max_length) for L, a in candidates]
    length, angle, _ = max(fits, key=lambda f: f[2])
    return length, angle % 180.0


# --------------------------------------------------------------------------------------------
# General kernels: coarse-to-fine L0-gradient MAP
# --------------------------------------------------------------------------------------------


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """n_out x n_in linear-interpolation weights, widened when shrinking (anti-aliased, like imresize)."""
    scale = n_out / n_in
    x = (np.arange(n_out) + 0.5) / scale - 0.5  # input coordinate of each output pixel centre
    width = max(1.0, 1.0 / scale)
    weights = np.maximum(0.0, 1.0 - np.abs(x[:, None] - np.arange(n_in)[None, :]) / width)
    return weights / weights.sum(axis=1, keepdims=True)


def _resize(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return _resize_matrix(plane.shape[0], shape[0]) @ plane @ _resize_matrix(plane.shape[1], shape[1]).T


def _otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of the kernel zero-padded to `shape` with its centre pixel rolled to (0, 0)."""
    kh, kw = kernel.shape
    z = np.zeros(shape)
    z[:kh, :kw] = kernel
    return np.fft.rfft2(np.roll(z, (-((kh - 1) // 2), -((kw - 1) // 2)), axis=(0, 1)))


def _gradients(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circular forward differences (x, y), consistent with the FFT's periodic model."""
    return np.roll(plane, -1, axis=1) - plane, np.roll(plane, -1, axis=0) - plane


def _l0_latent(padded: np.ndarray, kernel: np.ndarray, lam: float) -> np.ndarray:
    """argmin_x |k * x - y|^2 + lam |grad x|_0 by half-quadratic splitting (Xu et al. 2013).

    Auxiliary gradients g: for fixed x, g = grad x where |grad x|^2 >= lam / beta, else 0; for
    fixed g, x = F^-1[(conj K Y + beta F(D^T g)) / (|K|^2 + beta |D|^2)], D^T g being the
    divergence taken in space (one forward FFT per step, not two); beta grows geometrically
    (HQS_KAPPA) so the support of the edges freezes as the penalty tightens.
    """
    shape = padded.shape
    K = _otf(kernel, shape)
    D2 = _otf(np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]), shape).real  # |Dx|^2 + |Dy|^2
    KtY = np.conj(K) * np.fft.rfft2(padded)
    K2 = K.real**2 + K.imag**2
    x = padded
    beta = 2 * lam
    while beta < HQS_BETA_MAX:
        gx, gy = _gradients(x)
        flat = gx * gx + gy * gy < lam / beta
        gx[flat] = 0.0
        gy[flat] = 0.0
        div = np.roll(gx, 1, axis=1) - gx + np.roll(gy, 1, axis=0) - gy  # D^T g (adjoint of _gradients)
        x = np.fft.irfft2((KtY + beta * np.fft.rfft2(div)) / (K2 + beta * D2), s=shape)
        beta *= HQS_KAPPA
    return x


class _KernelNormalEquations:
    """Normal equations M k = b of argmin_k sum_d |k * d x - d y|^2 + gamma |k|^2 over a size x size support.

    M[i, j] = R(d_i - d_j) + gamma [i = j] and b[i] = C(d_i), where R is the autocorrelation of
    the latent's gradients, C their cross-correlation with the blurred image's gradients (both one
    FFT product) and d the kernel offsets; `select` (edge selection), when given, multiplies the
    latent's gradients first. M is never formed: M k is the linear convolution of the
    (2 size - 1)^2 window of R with k (small FFTs), which keeps the solve off the BLAS (dense
    products slow down ten-fold when its threads compete for a busy machine's cores).
    """

    def __init__(self, latent: np.ndarray, blurred: np.ndarray, size: int, tikhonov: float,
                 select: np.ndarray | None = None) -> None:
        shape = latent.shape
        grads = _gradients(latent)
        if select is not None:
            grads = tuple(g * select for g in grads)
        Sx, Sy = (np.fft.rfft2(g) for g in grads)
        Bx, By = (np.fft.rfft2(g) for g in _gradients(blurred))
        R = np.fft.irfft2(Sx.real**2 + Sx.imag**2 + Sy.real**2 + Sy.imag**2, s=shape)
        C = np.fft.irfft2(np.conj(Sx) * Bx + np.conj(Sy) * By, s=shape)
        c = (size - 1) // 2
        wide = np.arange(-(size - 1), size)
        offsets = np.arange(size) - c
        self.size = size
        self.fft_shape = (3 * size - 2, 3 * size - 2)
        self.R_hat = np.fft.rfft2(R[np.ix_(wide % shape[0], wide % shape[1])], s=self.fft_shape)
        self.b = C[np.ix_(offsets % shape[0], offsets % shape[1])]
        self.gamma = tikhonov * latent.size / 1e4

    def apply(self, k: np.ndarray) -> np.ndarray:
        full = np.fft.irfft2(self.R_hat * np.fft.rfft2(k, s=self.fft_shape), s=self.fft_shape)
        n = self.size
        return full[n - 1 : 2 * n - 1, n - 1 : 2 * n - 1] + self.gamma * k

    def solve(self, start: np.ndarray, iterations: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Conjugate gradients from `start`; with `mask`, over the unknowns where mask is True only."""
        m = np.ones(start.shape, bool) if mask is None else mask
        x = np.where(m, start, 0.0)
        r = np.where(m, self.b - self.apply(x), 0.0)
        p = r.copy()
        rr = float(np.vdot(r, r))
        stop = 1e-12 * float(np.vdot(self.b, self.b))
        for _ in range(iterations):
            if rr <= stop:
                break
            Mp = np.where(m, self.apply(p), 0.0)
            alpha = rr / float(np.vdot(p, Mp))
            x = x + alpha * p
            r = r - alpha * Mp
            rr_new = float(np.vdot(r, r))
            p = r + (rr_new / rr) * p
            rr = rr_new
        return x


def _edge_selection(blurred: np.ndarray, threshold: float) -> np.ndarray | None:
    """Xu & Jia's (ECCV 2010) r-map mask, 1 where r = |sum grad y| / (sum |grad y| + eps) over a
    (2 EDGE_WINDOW_RADIUS + 1)^2 window exceeds `threshold` (gradients that point one way: a
    blurred edge), 0 where they cancel (texture finer than the window); None when `threshold` is 0."""
    if threshold <= 0:
        return None
    gx, gy = _gradients(blurred)
    r = EDGE_WINDOW_RADIUS
    agreeing = np.hypot(_box_mean(gx, r), _box_mean(gy, r))
    total = _box_mean(np.hypot(gx, gy), r) + EDGE_SELECTION_EPS / (2 * r + 1) ** 2
    return (agreeing / total > threshold).astype(blurred.dtype)


def _kernel_least_squares(latent: np.ndarray, blurred: np.ndarray, start: np.ndarray, tikhonov: float,
                          select: np.ndarray | None = None) -> np.ndarray:
    """The kernel least squares (unconstrained) by CG_ITERATIONS conjugate-gradient steps from `start`.

    A few dozen cheap steps instead of an O(size^6) dense solve land close enough: the kernel is
    thresholded and cleaned right after.
    """
    return _KernelNormalEquations(latent, blurred, start.shape[0], tikhonov, select).solve(start, CG_ITERATIONS)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a small boolean mask, as lists of flat indices."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    out = []
    for start in np.flatnonzero(mask):
        if seen.flat[start]:
            continue
        seen.flat[start] = True
        stack, members = [start], []
        while stack:
            p = stack.pop()
            members.append(p)
            r, c = divmod(p, w)
            for rr in range(max(r - 1, 0), min(r + 2, h)):
                for cc in range(max(c - 1, 0), min(c + 2, w)):
                    if mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append(rr * w + cc)
        out.append(np.array(members))
    return out


def _clean_kernel(kernel: np.ndarray, settings: KernelEstimateSettings) -> np.ndarray:
    """Positivity, values below settings.threshold x max to zero, components below
    settings.min_component of the mass removed, sum 1."""
    k = np.clip(kernel, 0.0, None)
    if k.max() <= 0:
        return _delta(kernel.shape[0])
    k[k < settings.threshold * k.max()] = 0.0
    total = k.sum()
    for members in _components(k > 0):
        if k.flat[members].sum() < settings.min_component * total:
            k.flat[members] = 0.0
    return k / k.sum()


def _delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[(size - 1) // 2, (size - 1) // 2] = 1.0
    return k


def _recentre(kernel: np.ndarray) -> np.ndarray:
    """Shift by whole pixels so the centre of mass lands on the centre pixel (within half a pixel).

    Blind deconvolution cannot tell a kernel from its translate (the image moves instead); the
    centre of mass is the convention edge_runtime.kernels uses. Mass shifted past the edge is lost.
    """
    size = kernel.shape[0]
    c = (size - 1) // 2
    idx = np.arange(size)
    total = kernel.sum()
    sy = int(round(c - (kernel.sum(axis=1) @ idx) / total))
    sx = int(round(c - (kernel.sum(axis=0) @ idx) / total))
    out = np.zeros_like(kernel)
    src_y = slice(max(0, -sy), min(size, size - sy))
    src_x = slice(max(0, -sx), min(size, size - sx))
    dst_y = slice(max(0, sy), min(size, size + sy))
    dst_x = slice(max(0, sx), min(size, size + sx))
    out[dst_y, dst_x] = kernel[src_y, src_x]
    return out / out.sum()


def _pyramid(kernel_size: int) -> list[tuple[float, int]]:
    """(image scale, odd kernel side) per level, coarsest first (Pan et al.'s schedule)."""
    levels = max(int(math.floor(math.log(COARSEST_KERNEL / kernel_size) / math.log(PYRAMID_RATIO))), 0) + 1
    out = []
    for i in range(levels - 1, -1, -1):
        scale = PYRAMID_RATIO**i
        side = int(math.ceil(kernel_size * scale))
        out.append((scale, side + 1 - side % 2))
    return out


def _estimate_on_level(grey: np.ndarray, kernel: np.ndarray, lam: float, lam_floor: float,
                       settings: KernelEstimateSettings) -> tuple[np.ndarray, float]:
    """settings.iterations_per_level alternations of the latent image and the kernel on one pyramid level."""
    size = kernel.shape[0]
    for _ in range(settings.iterations_per_level):
        padded = edge_taper_pad(grey[..., None].astype(np.float32), kernel, size)[..., 0]
        latent = _l0_latent(padded, kernel, lam)
        select = _edge_selection(padded, settings.edge_selection)
        kernel = _clean_kernel(_kernel_least_squares(latent, padded, kernel, settings.kernel_tikhonov, select), settings)
        lam = max(lam / settings.lambda_decay, lam_floor)
    return kernel, lam


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2 radius + 1)^2 square."""
    h, w = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _refine_kernel(region: np.ndarray, kernel: np.ndarray, lam: float, settings: KernelEstimateSettings) -> np.ndarray:
    """Final full-resolution pass: latent image with the kernel, then a support-restricted kernel solve.

    The L0 latent image at the final weight, then the kernel least squares over the kernel's
    support grown by settings.refine_dilation px, by conjugate gradients; unknowns that come out negative
    are dropped from the support and the solve repeated (an active-set approximation of the
    non-negative least squares), and the result is cleaned and renormalised.
    """
    size = kernel.shape[0]
    padded = edge_taper_pad(region[..., None].astype(np.float32), kernel, size)[..., 0]
    latent = _l0_latent(padded, kernel, lam)
    equations = _KernelNormalEquations(latent, padded, size, settings.refine_tikhonov)
    support = _dilate(kernel > 0, settings.refine_dilation)
    k = kernel
    for _ in range(settings.refine_rounds):
        k = equations.solve(k, REFINE_CG_ITERATIONS, mask=support)
        support &= k > 0
    return _clean_kernel(k, settings)


@dataclass(frozen=True)
class KernelCandidates:
    """Every run of one blind estimate (see KernelEstimateSettings.candidates): each run's kernel
    (kernel_size x kernel_size), a label saying how it was run, its marginal cost on the crop
    (lower fits better), its L0 energy (lower fits better; empty when pick_map_weight is 0), both
    empty with one run, the index of the run kept, and whether that run's kernel was taken for no
    blur (KernelEstimateSettings.no_blur_peak), in which case :func:`estimate_kernel` returns a
    delta kernel."""

    kernels: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    costs: tuple[float, ...]
    chosen: int
    energies: tuple[float, ...] = ()
    no_blur: bool = False

    @property
    def kept(self) -> np.ndarray:
        """The kept run's kernel, whether or not it was taken for no blur."""
        return self.kernels[self.chosen]

    @property
    def kernel(self) -> np.ndarray:
        """The estimate: the kept run's kernel, or a delta of its size where that means no blur."""
        return _delta(self.kept.shape[0]) if self.no_blur else self.kept


def estimate_kernel(image: np.ndarray, kernel_size: int = 31, *, crop: int = DEFAULT_CROP,
                    noise_sigma: float | None = None,
                    settings: KernelEstimateSettings = KernelEstimateSettings()) -> np.ndarray:
    """Blind kernel estimate: float64, odd kernel_size x kernel_size, non-negative, sum 1, centred.

    `image` is HxW or HxWxC (C = 1 or 3), float in [0, 1] (or uint8 / uint16), blurred by one
    shift-invariant kernel no larger than `kernel_size`. The estimate runs on the grey
    `crop` x `crop` window with the most edge content. `noise_sigma` (0-255 scale; None estimates
    it) sets the floor of the L0 weight, so noise is not taken for edges. The centre of mass lies
    within half a pixel of the centre pixel ((kernel_size - 1) // 2). Raises KernelError (one
    line) on a bad size, a non-finite image or one too small for the kernel. `settings`: the
    estimator's tuned constants (:class:`KernelEstimateSettings`; the defaults are the tuned ones).
    """
    return estimate_kernel_candidates(image, kernel_size, crop=crop, noise_sigma=noise_sigma, settings=settings).kernel


def estimate_kernel_candidates(image: np.ndarray, kernel_size: int = 31, *, crop: int = DEFAULT_CROP,
                               noise_sigma: float | None = None,
                               settings: KernelEstimateSettings = KernelEstimateSettings()) -> KernelCandidates:
    """:func:`estimate_kernel` with every run it made and how it chose (for sweeps and reports)."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 3 or kernel_size % 2 == 0:
        raise KernelError(f"estimate: kernel size must be an odd integer >= 3, got {kernel_size!r}")
    if not isinstance(crop, (int, np.integer)) or crop < MIN_IMAGE_TO_KERNEL * kernel_size:
        raise KernelError(f"estimate: crop must be an integer >= {MIN_IMAGE_TO_KERNEL * kernel_size} px for a {kernel_size} px kernel, got {crop!r}")
    if noise_sigma is not None and not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise KernelError(f"estimate: noise sigma must be a finite number >= 0, got {noise_sigma}")
    settings = settings.check()
    region = estimation_region(image, kernel_size, crop)
    if noise_sigma is None:
        noise_sigma = estimate_noise_sigma(region[..., None])
    runs = _candidate_runs(kernel_size, settings)
    labels = tuple(f"support {size} px, threshold {run.threshold:g}"
                   + (f", edge selection {run.edge_selection:g}" if run.edge_selection else "") for size, run in runs)

    def estimate(run: tuple[int, KernelEstimateSettings]) -> np.ndarray:
        return _embed(_estimate_with_consensus(region, run[0], noise_sigma, run[1]), kernel_size)

    if len(runs) == 1:
        only = estimate(runs[0])
        return KernelCandidates((only,), labels, (), 0, no_blur=_is_no_blur(only, settings))
    # the runs side by side: numpy's FFTs and large array operations release the GIL, so they
    # overlap on a multi-core board; each run's kernel is the same as alone, bit for bit
    # (tests/test_kernel_estimation.py)
    with ThreadPoolExecutor(min(len(runs), os.cpu_count() or 1)) as pool:
        estimates = tuple(pool.map(estimate, runs))
        energies = tuple(pool.map(lambda k: l0_energy(region, k), estimates)) if settings.pick_map_weight else ()
    costs = tuple(kernel_costs(region, list(estimates), noise_sigma))
    chosen = pick_run(costs, energies, settings.pick_map_weight)
    return KernelCandidates(estimates, labels, costs, chosen, energies, _is_no_blur(estimates[chosen], settings))


def _is_no_blur(kernel: np.ndarray, settings: KernelEstimateSettings) -> bool:
    """Whether an estimate lies within the estimator's resolution floor (no_blur_peak)."""
    return settings.no_blur_peak < 1 and float(kernel.max()) / float(kernel.sum()) >= settings.no_blur_peak


def estimation_region(image: np.ndarray, kernel_size: int, crop: int) -> np.ndarray:
    """The grey crop :func:`estimate_kernel` works on: the crop x crop window with the most edge
    content, float64 in [0, 1]; KernelError (one line) for an image too small for the kernel."""
    return _edge_richest_crop(_grey(image, MIN_IMAGE_TO_KERNEL * kernel_size, "estimate"), int(crop))


def pick_run(costs: tuple[float, ...], energies: tuple[float, ...], weight: float) -> int:
    """Index of the run kept: the lowest standardised marginal cost plus `weight` x the
    standardised L0 energy (energies unused, and may be empty, when weight is 0)."""
    if weight == 0:
        return int(np.argmin(costs))
    return int(np.argmin(_standardised(costs) + weight * _standardised(energies)))


def _standardised(values: tuple[float, ...]) -> np.ndarray:
    """(v - mean) / std over the runs (0 where they are all equal): the two scores of the pick
    have unrelated units, so each counts by how far it sets the runs apart."""
    v = np.asarray(values, np.float64)
    spread = float(v.std())
    return (v - v.mean()) / spread if spread > 0 else np.zeros_like(v)


def l0_energy(region: np.ndarray, kernel: np.ndarray) -> float:
    """The L0 deblurring energy of a grey region (HxW, [0, 1]) under `kernel`, per pixel:
    mean |k * x - y|^2 + PICK_L0_WEIGHT * PICK_LAMBDA * share of |grad x| > PICK_GRADIENT_FLOOR,
    with x the L0 latent image at PICK_LAMBDA (:func:`_l0_latent`), on the region's interior."""
    size = kernel.shape[0]
    padded = edge_taper_pad(region[..., None].astype(np.float32), kernel, size)[..., 0].astype(np.float64)
    latent = _l0_latent(padded, kernel, PICK_LAMBDA)
    reblurred = np.fft.irfft2(_otf(kernel, padded.shape) * np.fft.rfft2(latent), s=padded.shape)
    inner = (slice(size, -size), slice(size, -size))
    gx, gy = _gradients(latent)
    residual = float(np.mean((reblurred - padded)[inner] ** 2))
    edges = float(np.mean(np.hypot(gx, gy)[inner] > PICK_GRADIENT_FLOOR))
    return residual + PICK_L0_WEIGHT * PICK_LAMBDA * edges


def _candidate_runs(kernel_size: int, settings: KernelEstimateSettings) -> list[tuple[int, KernelEstimateSettings]]:
    """(kernel size, settings) of each run: the settings as given, then with settings.candidates
    the low-threshold and the small-support runs, and with settings.candidate_edge_selection each
    of those again with edge selection (only runs that differ from those before them)."""
    runs = [(kernel_size, settings)]
    if settings.candidates:
        small = max(3, int(round(settings.candidate_size_ratio * kernel_size)) | 1)
        for run in ((kernel_size, replace(settings, threshold=settings.candidate_threshold)), (small, settings)):
            if run not in runs:
                runs.append(run)
        if settings.candidate_edge_selection > 0:
            for size, run in list(runs):
                edges = (size, replace(run, edge_selection=settings.candidate_edge_selection))
                if edges not in runs:
                    runs.append(edges)
    return runs


def _embed(kernel: np.ndarray, size: int) -> np.ndarray:
    """A centred odd kernel placed in the centre of a size x size frame (size >= its side)."""
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, pad) if pad else kernel


def _estimate_with_consensus(region: np.ndarray, kernel_size: int, noise_sigma: float,
                             settings: KernelEstimateSettings) -> np.ndarray:
    """One run on the region, or with settings.consensus the medoid of the runs on the region and
    its four quadrants."""
    quadrants = _quadrants(region, kernel_size) if settings.consensus else []
    if not quadrants:
        return _estimate_on_region(region, kernel_size, noise_sigma, settings)
    estimates = [_estimate_on_region(r, kernel_size, noise_sigma, settings) for r in [region, *quadrants]]
    return estimates[_medoid(estimates)]


def _quadrants(region: np.ndarray, kernel_size: int) -> list[np.ndarray]:
    """The four corner windows of `region`, each half its size plus QUADRANT_OVERLAP kernel sizes;
    none when they would be smaller than QUADRANT_MIN_SIDE or than an estimate needs
    (MIN_IMAGE_TO_KERNEL kernel sizes), or no smaller than the region."""
    h, w = region.shape
    qh = min(h, h // 2 + QUADRANT_OVERLAP * kernel_size)
    qw = min(w, w // 2 + QUADRANT_OVERLAP * kernel_size)
    if min(qh, qw) < max(QUADRANT_MIN_SIDE, MIN_IMAGE_TO_KERNEL * kernel_size) or (qh, qw) == (h, w):
        return []
    return [region[y : y + qh, x : x + qw] for y in (0, h - qh) for x in (0, w - qw)]


def _kernel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - the largest normalised cross-correlation of two kernels over all translations (0: the
    same kernel up to a shift; blind estimates are only defined up to one)."""
    n = a.shape[0] + b.shape[0]
    corr = np.fft.irfft2(np.fft.rfft2(a, s=(n, n)) * np.conj(np.fft.rfft2(b, s=(n, n))), s=(n, n))
    return 1.0 - float(corr.max()) / math.sqrt(float((a * a).sum() * (b * b).sum()))


def _medoid(kernels: list[np.ndarray]) -> int:
    """Index of the kernel with the smallest summed distance to the others (the first on ties)."""
    dist = np.array([[_kernel_distance(a, b) for b in kernels] for a in kernels])
    return int(np.argmin(dist.sum(axis=1)))


def _estimate_on_region(region: np.ndarray, kernel_size: int, noise_sigma: float,
                        settings: KernelEstimateSettings) -> np.ndarray:
    """The coarse-to-fine estimate on one grey region (see the module docstring)."""
    lam_floor = max(settings.lambda_min, settings.noise_lambda_factor * (noise_sigma / 255.0) ** 2)
    lam = settings.lambda_start
    kernel = None
    for scale, side in _pyramid(kernel_size):
        shape = (max(int(round(region.shape[0] * scale)), 2 * side), max(int(round(region.shape[1] * scale)), 2 * side))
        level = _resize(region, shape)
        if kernel is None:
            kernel = _delta(side)
        else:
            kernel = _recentre(_clean_kernel(_resize(kernel, (side, side)), settings))
        kernel, lam = _estimate_on_level(level, kernel, lam, lam_floor, settings)
    kernel = _recentre(_clean_kernel(kernel, settings))
    if settings.refine_rounds:
        kernel = _recentre(_refine_kernel(region, kernel, lam, settings))
    return kernel
