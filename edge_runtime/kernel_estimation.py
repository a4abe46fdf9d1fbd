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
      gradient domain, the normal equations built from FFT auto/cross-correlations and solved
      exactly, then positivity, thresholding of small values, removal of weak isolated
      components and renormalisation,
  with lambda decreasing; the kernel is upsampled to the next, finer level and recentred.

Both work on one grey crop (the one with the most edge content) so the cost is bounded whatever
the image size. Kernels follow edge_runtime.kernels: odd sides, centred on ((h-1)//2, (w-1)//2),
sum 1, and the motion angle is counter-clockwise from +x with image rows growing downwards.
"""

from __future__ import annotations

import math

import numpy as np

from .classic import edge_taper_pad, estimate_noise_sigma
from .errors import KernelError

__all__ = ["estimate_linear_motion", "estimate_kernel"]

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
#: iteration and 384 keeps one estimate to a few seconds on a 2-core machine.
DEFAULT_CROP = 384
#: Pyramid ratio between levels and the smallest kernel side, as in Pan et al.'s code.
PYRAMID_RATIO = math.sqrt(0.5)
COARSEST_KERNEL = 5
#: Alternations per pyramid level (Pan et al. use 5).
ITERATIONS_PER_LEVEL = 5
#: L0 gradient weight: starts at LAMBDA_START, divided by LAMBDA_DECAY after every alternation,
#: never below LAMBDA_MIN (Pan et al.'s defaults for natural images, [0, 1] intensities).
LAMBDA_START = 4e-3
LAMBDA_DECAY = 1.1
LAMBDA_MIN = 1e-4
#: Half-quadratic splitting: beta from 2 lambda, times HQS_KAPPA per step, up to HQS_BETA_MAX.
HQS_KAPPA = 2.0
HQS_BETA_MAX = 1e5
#: Tikhonov weight on |k|^2 in the kernel least squares, per 10^4 gradient pixels (so it scales
#: with the crop at every level); Pan et al. use 2 for whole images.
KERNEL_TIKHONOV = 2.0
#: Kernel values below this fraction of the maximum are zeroed after each solve (Pan et al.: 0.05).
KERNEL_THRESHOLD = 0.05
#: Connected components (8-neighbour) of the kernel holding less than this share of the mass are
#: removed: shake is one connected path, isolated specks are noise (Pan et al.: 0.1).
KERNEL_MIN_COMPONENT = 0.1
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
