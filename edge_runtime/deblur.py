"""Plug-and-play deconvolution with a shipped INT8 denoiser as the image prior (numpy + the runtime).

    from edge_runtime import load_model
    from edge_runtime.deblur import deblur
    sharp = deblur(photo, kernel="motion:15,30", model=load_model("deblur_prior"), noise_sigma=2.55)

Half-quadratic splitting (HQS), as in IRCNN (Zhang et al., CVPR 2017) and DPIR (Zhang et al.,
TPAMI 2021): starting from the blurred image, alternate

    data step   x = F^-1[(conj(K) Y + a_i Z) / (|K|^2 + a_i)]      (closed form, per channel)
    prior step  z = D(x)                                            (the denoiser, tiled)

with a_i = weight * s_n^2 / s_i^2 over noise levels s_i log-spaced from `start_sigma` down to the
image's noise level s_n. Early iterations trust the prior (strong denoising of the ringing the data
step leaves), late ones the data. The denoiser is blind, so s_i only sets a_i. Prior step i
sees the image rotated/flipped by transform i mod 8 and turned back after (DPIR's periodic
geometric self-ensemble, `PnPSchedule.self_ensemble`), at no extra cost.

Borders: the image is padded by reflection by at least the kernel size and the margin tapered
(`classic.edge_taper_pad`), so the FFT's wrap-around does not ring into the image; then a few Wiener
passes replace that margin by the blur of an estimate of the scene past the borders
(`PnPSchedule.boundary_passes`), as the pixels near a border were blurred from it. Large images
are deconvolved in blocks with margins of real neighbouring pixels (:class:`BlockPlan`), so memory
stays bounded by the block size whatever the photo's size.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .classic import (_as_kernel, _fast_len, _from_float, _otf, _to_float, estimate_noise_sigma, taper_weight,
                      wiener_regulariser)
from .errors import KernelError, UsageError
from .kernel_estimation import DEFAULT_CROP, KernelEstimateSettings, estimate_kernel_candidates, estimate_linear_motion

#: Default HQS iterations (denoiser passes); chosen by the sweep in docs/deblur.md.
DEFAULT_ITERATIONS = 4
#: Side of the core of one deconvolution block in pixels; each block adds margins of a few
#: kernel sizes. 1024 keeps a block's FFT buffers near 160 MB, so a 48 MP photo stays within the
#: runtime's memory bound, while a phone photo up to ~1 MP per side-block runs as one piece.
BLOCK_CORE = 1024
#: Noise floor of the schedule (0-255): an 8-bit image always carries rounding noise (1/sqrt(12)).
MIN_NOISE_SIGMA = 0.5
#: Schedule noise floor (0-255) with an estimated kernel: its error acts as extra noise in y - k * x.
BLIND_SIGMA_FLOOR = 3.0

Denoiser = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


def geometric_transform(image: np.ndarray, index: int, inverse: bool = False) -> np.ndarray:
    """One of the 8 rotations/flips of an HxW(xC) image (index mod 8); `inverse` undoes it."""
    turns, flip = index % 4, (index // 4) % 2 == 1
    if inverse:
        image = image[:, ::-1] if flip else image
        return np.rot90(image, -turns, axes=(0, 1))
    image = np.rot90(image, turns, axes=(0, 1))
    return image[:, ::-1] if flip else image


@dataclass(frozen=True)
class BlindSettings:
    """How a blind `estimate` kernel is found and trusted (docs/deblur.md: chosen on a tuning set).

    crop: side of the grey crop the kernel is estimated on (the most detailed window);
    sigma_floor: the least noise level (0-255) the schedule assumes with an estimated kernel;
    estimator: the kernel estimator's tuned constants (kernel_estimation.KernelEstimateSettings).
    """

    crop: int = DEFAULT_CROP
    sigma_floor: float = BLIND_SIGMA_FLOOR
    estimator: KernelEstimateSettings = KernelEstimateSettings()


@dataclass(frozen=True)
class PnPSchedule:
    """The HQS schedule; see docs/deblur.md for the sweep that chose the defaults."""

    iterations: int = DEFAULT_ITERATIONS
    weight: float = 1.0  # lambda: a_i = weight * s_n^2 / s_i^2
    start_sigma: float = 25.0  # s_1 on the 0-255 scale
    output: str = "data"  # "data": the last data step (sharper); "prior": the last denoiser output
    relax_sigma: float = 5.0  # > 0: prior step z = x + min(1, s_i / relax_sigma) * (D(x) - x); 0: off
    # True: prior step i sees the image rotated/flipped by transform i mod 8 and the result is turned
    # back (DPIR's periodic geometric self-ensemble): free, and +0.05 dB at 4 iterations in the sweep
    self_ensemble: bool = True
    # Wiener passes that estimate the blurred image past the borders before HQS starts (the unknown
    # boundary, :func:`_observed_spectrum`); 0: the reflected, tapered margin alone. 2 in the
    # sweep: +0.35 dB, one FFT pair each (3: +0.06 dB more for another pair; docs/deblur.md)
    boundary_passes: int = 2

    def check(self) -> "PnPSchedule":
        if self.iterations < 1:
            raise UsageError(f"PnP needs at least 1 iteration, got {self.iterations}")
        if isinstance(self.boundary_passes, bool) or not isinstance(self.boundary_passes, (int, np.integer)) \
                or self.boundary_passes < 0:
            raise UsageError(f"PnP boundary passes must be an integer >= 0, got {self.boundary_passes!r}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise UsageError(f"PnP weight must be a positive number, got {self.weight}")
        if not (math.isfinite(self.start_sigma) and self.start_sigma > 0):
            raise UsageError(f"PnP start sigma must be a positive number, got {self.start_sigma}")
        if self.output not in ("data", "prior"):
            raise UsageError(f"PnP output must be 'data' or 'prior', got {self.output!r}")
        return self

    def sigmas(self, noise_sigma: float) -> list[float]:
        """The prior's noise levels s_i (0-255), log-spaced from start_sigma to the noise level."""
        end = max(float(noise_sigma), MIN_NOISE_SIGMA)
        start = max(self.start_sigma, end)
        if self.iterations == 1:
            return [start]
        return list(np.geomspace(start, end, self.iterations))

    def alphas(self, noise_sigma: float) -> list[float]:
        """The data-step weights a_i = weight * s_n^2 / s_i^2."""
        sn = max(float(noise_sigma), MIN_NOISE_SIGMA)
        return [self.weight * sn * sn / (s * s) for s in self.sigmas(noise_sigma)]

    def relaxations(self, noise_sigma: float) -> list[float]:
        """How much of each denoiser step is taken: 1 while s_i >= relax_sigma, then s_i / relax_sigma.

        The denoiser is blind: it removes what it sees as noise at full strength every time, where
        a noise-level-aware prior (DPIR's) would act less and less as s_i falls. Taking only part
        of its step late in the schedule stands in for that.
        """
        if self.relax_sigma <= 0:
            return [1.0] * self.iterations
        return [min(1.0, s / self.relax_sigma) for s in self.sigmas(noise_sigma)]

    def describe(self, noise_sigma: float) -> dict:
        return {**asdict(self), "noise_sigma": round(float(noise_sigma), 4),
                "sigmas": [round(s, 4) for s in self.sigmas(noise_sigma)]}


def hqs_data_spectrum(ky: np.ndarray, h2: np.ndarray, z_spectrum: np.ndarray, a: float) -> np.ndarray:
    """The HQS data step in the Fourier domain, (conj(K) Y + a Z) / (|K|^2 + a), computed in place
    in `z_spectrum` (which it returns). Shared with train/pnp_prior.py, so that the inputs a prior
    is trained on are made by the board's own formula."""
    z_spectrum *= np.float32(a)
    z_spectrum += ky
    z_spectrum /= h2 + np.float32(a)
    return z_spectrum


class PlaneFFT:
    """rfft2 / irfft2 of C x H x W stacks, split across `workers` threads.

    numpy's FFT is single-threaded but releases the GIL. A 2-D transform is 1-D transforms along
    the rows, then along the columns; each half is cut into `workers` bands of rows (or columns)
    that run side by side, while the denoiser's threads would otherwise idle between its passes.
    With the planar layout it brought PnP at 4 iterations from 6.65 to 5.26 denoiser passes per
    MP on 1 thread, and to 5.24 on 2 (`python -m edge_runtime.bench --pnp`, docs/deblur.md).
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self.pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None

    def _bands(self, fn: Callable[[np.ndarray], np.ndarray], src: np.ndarray, out: np.ndarray, axis: int) -> np.ndarray:
        """out[band] = fn(src[band]) for bands cut along `axis` (not the transformed one)."""
        if self.pool is None:
            out[...] = fn(src)
            return out
        edges = np.linspace(0, src.shape[axis], self.workers + 1).astype(int)
        cuts = [(slice(None),) * (axis % src.ndim) + (slice(a, b),) for a, b in zip(edges[:-1], edges[1:]) if b > a]

        def run(cut: tuple) -> None:
            out[cut] = fn(src[cut])

        list(self.pool.map(run, cuts))
        return out

    def rfft2(self, planes: np.ndarray) -> np.ndarray:
        c, h, w = planes.shape
        rows = self._bands(lambda a: np.fft.rfft(a, axis=-1), planes, np.empty((c, h, w // 2 + 1), np.complex64), 1)
        return self._bands(lambda a: np.fft.fft(a, axis=-2), rows, np.empty_like(rows), 2)

    def irfft2(self, spectra: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        cols = self._bands(lambda a: np.fft.ifft(a, axis=-2), spectra, np.empty_like(spectra), 2)
        return self._bands(lambda a: np.fft.irfft(a, n=shape[1], axis=-1), cols,
                           np.empty((spectra.shape[0], *shape), np.float32), 1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def pnp_deconvolve_block(
    image: np.ndarray, kernel: np.ndarray, denoise: Denoiser, noise_sigma: float,
    schedule: PnPSchedule = PnPSchedule(), progress: Callable[[], None] | None = None,
    fft: PlaneFFT | None = None,
) -> np.ndarray:
    """HQS PnP on one HxWxC float32 image in [0, 1] (whole; its margin estimated by
    `schedule.boundary_passes`, or tapered with none); returns float32 HxWxC.

    `denoise` maps an HxWxC float32 image to its denoised version; `progress()` is called after
    each denoiser pass; `fft` runs the transforms (default: one thread).
    """
    fft = fft or PlaneFFT()
    k = _as_kernel(kernel)
    h, w = image.shape[:2]
    margin = max(k.shape)
    # bottom/right margins grow to sizes pocketfft transforms fast (a prime side is ~10x slower)
    extra = (_fast_len(h + 2 * margin) - h - 2 * margin, _fast_len(w + 2 * margin) - w - 2 * margin)
    # channel planes (C x H x W): FFTs over contiguous planes ran 2.5x faster than over the
    # interleaved H x W x C layout (numpy's pocketfft, measured), and the data step is their cost.
    # In-place arithmetic below keeps a block's peak near 9 float32 stacks of its padded planes
    # (160 MB for a full 1150 px block, tracemalloc; 205 MB before, with plain expressions).
    ph, pw = h + 2 * margin + extra[0], w + 2 * margin + extra[1]
    H = _otf(k, (ph, pw)).astype(np.complex64)
    H2 = (H.real**2 + H.imag**2).astype(np.float32)
    inner = (slice(None), slice(margin, margin + h), slice(margin, margin + w))
    z_spectrum = _observed_spectrum(image, H, H2, margin, extra, inner, noise_sigma, schedule.boundary_passes, fft)
    KY = np.conj(H) * z_spectrum  # HQS starts from the blurred image itself (z_spectrum)
    del H

    def data_step(z_spectrum: np.ndarray, a: float) -> np.ndarray:
        """The closed-form x for weight a; consumes (overwrites) z_spectrum."""
        return fft.irfft2(hqs_data_spectrum(KY, H2, z_spectrum, a), (ph, pw))

    alphas = schedule.alphas(noise_sigma)
    for i, (a, beta) in enumerate(zip(alphas, schedule.relaxations(noise_sigma))):
        x = data_step(z_spectrum, a)
        np.clip(x, 0.0, 1.0, out=x)
        del z_spectrum
        # the prior runs on the image only: the tapered margin exists for the FFT's sake, and
        # denoising it too would cost up to half a pass more on a small photo
        view = x[inner].transpose(1, 2, 0)
        if schedule.self_ensemble:
            view = geometric_transform(view, i)
            denoised = geometric_transform(denoise(view), i, inverse=True)
        else:
            denoised = denoise(view)
        step = denoised.transpose(2, 0, 1) - x[inner]
        del denoised  # alive into the next FFTs, it lifted a block's peak above 10 plane stacks
        if beta < 1.0:
            step *= np.float32(beta)
        x[inner] += step  # x becomes z, the prior step's output
        del step
        z = x
        z_spectrum = fft.rfft2(z)
        if progress is not None:
            progress()
    # one more (cheap) data step pulls the prior's output back towards the measurements: it
    # scored higher than the denoiser's own output in the schedule sweep (docs/deblur.md)
    result = data_step(z_spectrum, alphas[-1]) if schedule.output == "data" else z
    return np.ascontiguousarray(result[inner].transpose(1, 2, 0))


def _observed_spectrum(image: np.ndarray, H: np.ndarray, h2: np.ndarray, margin: int, extra: tuple[int, int],
                       inner: tuple, noise_sigma: float, passes: int, fft: PlaneFFT) -> np.ndarray:
    """The spectrum of the blurred image (HxWxC float32) on the padded planes HQS works on.

    The image is padded by reflection (`margin` px, `extra` more at the bottom and right) and the
    margin tapered (classic.edge_taper_pad's blend with its own blur by the kernel H, so that the
    planes join smoothly across the FFT's wrap-around). Then, the unknown boundary: the scene goes
    on past the frame, and the pixels near a border are blurred from parts of it the photo does
    not show. A reflected margin is not the blur of any sharp image, so the data steps would
    deconvolve it into structure that the borders inherit. Each of the `passes` fills the margin
    with the blur of the current Wiener estimate, F^-1[|K|^2 Y / (|K|^2 + R)] with the
    natural-image prior R of classic.wiener_deconvolve at `noise_sigma`, and puts the measured
    pixels back (at `inner` in the planes): fixed-point steps towards the unknown-boundary model (Reeves, "Fast image
    restoration without boundary artifacts", IEEE TIP 2005), one FFT pair each. Every buffer is
    dropped as soon as it is used: this runs at a block's memory peak.
    """
    measured = np.asarray(image, np.float32).transpose(2, 0, 1)
    planes = np.pad(measured, ((0, 0), (margin, margin + extra[0]), (margin, margin + extra[1])), mode="reflect")
    shape = planes.shape[1:]
    weight = taper_weight(shape, margin, extra).astype(np.float32)
    spectrum = fft.rfft2(planes)
    spectrum *= H
    blurred = fft.irfft2(spectrum, shape)
    del spectrum
    blurred *= 1 - weight
    planes *= weight
    planes += blurred
    del blurred, weight
    spectrum = fft.rfft2(planes)
    del planes
    if passes:
        reblur = (h2 / (h2 + wiener_regulariser(shape, noise_sigma))).astype(np.float32)
    for _ in range(passes):
        spectrum *= reblur
        planes = fft.irfft2(spectrum, shape)
        del spectrum
        planes[inner] = measured
        spectrum = fft.rfft2(planes)
        del planes
    return spectrum


@dataclass(frozen=True)
class BlockPlan:
    """How an image is cut into deconvolution blocks: cores that tile the image, each read with a
    context margin of real neighbouring pixels (clamped at the image border) that is deconvolved
    with it and thrown away, so seams fall where both sides saw the same pixels."""

    height: int
    width: int
    core: int
    context: int

    def spans(self, n: int) -> list[tuple[int, int, int, int]]:
        """Per block along one axis: (read start, read stop, core start, core stop)."""
        if n <= self.core + 2 * self.context:  # one block: no seams, no margin needed
            return [(0, n, 0, n)]
        out = []
        for start in range(0, n, self.core):
            stop = min(start + self.core, n)
            out.append((max(0, start - self.context), min(n, stop + self.context), start, stop))
        return out

    def blocks(self) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
        # FFT memory follows the area: an image no larger than one full block's area is one block
        # whatever its shape (a 1155x866 photo split in two ran the denoiser on 20% more pixels)
        if self.height * self.width <= (self.core + 2 * self.context) ** 2:
            return [((0, self.height, 0, self.height), (0, self.width, 0, self.width))]
        return [(r, c) for r in self.spans(self.height) for c in self.spans(self.width)]


def block_plan(height: int, width: int, kernel: np.ndarray, core: int = BLOCK_CORE) -> BlockPlan:
    """Blocks for an image: a context of three kernel sizes covers the kernel's reach and the
    ringing the data step leaves near a block edge."""
    return BlockPlan(height, width, int(core), 3 * max(_as_kernel(kernel).shape))


def pnp_deconvolve(
    color: np.ndarray, kernel: np.ndarray, model, noise_sigma: float, schedule: PnPSchedule = PnPSchedule(),
    out: np.ndarray | None = None, progress: Progress | None = None, core: int = BLOCK_CORE,
) -> np.ndarray:
    """PnP deconvolution of an HxWxC image (uint8, uint16 or float in [0, 1]) with `model` (a
    RestorationModel) as the denoiser, block by block; writes into `out` (default: a new array of
    the input's dtype) and returns it. `progress(done, total)` counts denoiser tiles over all
    iterations and blocks.
    """
    schedule.check()
    h, w, c = color.shape
    k = _as_kernel(kernel)
    if k.shape[0] > h or k.shape[1] > w:
        raise KernelError(f"the blur kernel ({k.shape[1]}x{k.shape[0]}) is larger than the image ({w}x{h})")
    plan = block_plan(h, w, k, core)
    result = np.empty(color.shape, color.dtype) if out is None else out
    per_pass = [model.tiler(r[1] - r[0], cc[1] - cc[0], c).tiles for r, cc in plan.blocks()]
    total, done = schedule.iterations * sum(per_pass), 0

    # the FFTs get the denoiser's threads: they run between its passes, never beside them
    fft = PlaneFFT(min(8, int(getattr(getattr(model, "backend", None), "threads", 1) or 1)))
    try:
        for (rows, cols), tiles in zip(plan.blocks(), per_pass):
            def tile_progress(d: int, t: int) -> None:
                if progress is not None:
                    progress(done + d, total)

            def one_pass() -> None:
                nonlocal done
                done += tiles

            def denoise(x: np.ndarray) -> np.ndarray:
                # 8-bit pixels in and out: an int8 model reads its input on this grid anyway, and
                # uint8 tiles take the runtime's fast path (no float quantize/dequantize per tile)
                pixels = np.rint(x * np.float32(255.0)).astype(np.uint8)
                return model.restore(pixels, progress=tile_progress).astype(np.float32) / np.float32(255.0)

            block = _to_float(color[rows[0] : rows[1], cols[0] : cols[1]])
            restored = pnp_deconvolve_block(block, k, denoise, noise_sigma, schedule, progress=one_pass, fft=fft)
            core_rows = slice(rows[2] - rows[0], rows[3] - rows[0])
            core_cols = slice(cols[2] - cols[0], cols[3] - cols[0])
            result[rows[2] : rows[3], cols[2] : cols[3]] = _from_float(restored[core_rows, core_cols], result.dtype)
    finally:
        fft.close()
    return result


def refuse_deblur_prior(model) -> None:
    """Raise UsageError for a plug-and-play prior (contract task "pnp-prior") asked to restore a
    photo directly: it learned what the deconvolution's data step leaves, not camera noise."""
    if model.contract.task == "pnp-prior":
        raise UsageError(f"{model.path.name} is a plug-and-play deblurring prior, trained on what the deconvolution "
                         "leaves, not on photos: give the blur --kernel (a file, motion:L,A, disk:R, gaussian:S or "
                         "estimate), or denoise with --model denoise")


@dataclass
class DeblurInfo:
    """What a deblur run used: the kernel, where it came from, the noise level and the schedule."""

    kernel: np.ndarray
    kernel_source: dict
    noise_sigma: float  # given or estimated, 0-255 scale
    noise_sigma_estimated: bool
    schedule: PnPSchedule
    schedule_sigma: float  # what the schedule used: noise_sigma plus 8-bit rounding noise for 8-bit images,
    # at least BLIND_SIGMA_FLOOR with an estimated kernel

    def manifest(self) -> dict:
        return {"kernel": {**self.kernel_source, "shape": list(self.kernel.shape)},
                "noise_sigma": round(self.noise_sigma, 4), "noise_sigma_estimated": self.noise_sigma_estimated,
                "schedule": self.schedule.describe(self.schedule_sigma)}


def resolve_kernel(kernel, color: np.ndarray, crop: int = DEFAULT_CROP,
                   estimator: KernelEstimateSettings = KernelEstimateSettings()) -> tuple[np.ndarray, dict]:
    """The kernel for one image from an array, a .npy/.png path or a `--kernel` spec string
    (blind specs are estimated from `color`, HxWxC uint8 / uint16 / float in [0, 1]; `estimate`
    on its most detailed `crop` x `crop` window with the `estimator` settings); with a record of
    its source."""
    from .kernels import KernelSpec, kernel_from_spec, linear_motion_kernel, parse_kernel_spec

    if isinstance(kernel, np.ndarray):
        from .classic import check_kernel

        return check_kernel(kernel), {"source": "array"}
    spec = kernel if isinstance(kernel, KernelSpec) else parse_kernel_spec(str(kernel))
    if spec.source == "estimate":
        found = estimate_kernel_candidates(_to_float(color), crop=crop, settings=estimator)
        # which run was kept and every run's two scores, so a manifest shows how close the pick was
        runs = [{"run": label, "cost": round(cost, 6)} for label, cost in zip(found.labels, found.costs)]
        for run, energy in zip(runs, found.energies):  # none when the pick ignores them
            run["l0_energy"] = round(energy, 8)
        # peak: the kept run's largest value (its kernel sums to 1), what the no-blur check reads
        peak = float(found.kept.max())
        source = {**spec.describe(), "crop": crop, "run": found.labels[found.chosen], "peak": round(peak, 4), "runs": runs}
        if found.no_blur:
            source["blur"] = (f"none found (the kept run peaks at {peak:.2f} >= no_blur_peak "
                              f"{estimator.no_blur_peak:g}): a delta kernel, the image is only denoised")
        return found.kernel, source
    if spec.source == "motion-estimate":
        length, angle = estimate_linear_motion(_to_float(color))
        return linear_motion_kernel(length, angle), {**spec.describe(), "length": round(length, 3),
                                                     "angle": round(angle, 3)}
    return kernel_from_spec(spec), spec.describe()


def deblur_with_info(
    image: np.ndarray, kernel, model, noise_sigma: float | None = None, iterations: int = DEFAULT_ITERATIONS,
    schedule: PnPSchedule | None = None, progress: Progress | None = None, blind: BlindSettings = BlindSettings(),
) -> tuple[np.ndarray, DeblurInfo]:
    """:func:`deblur`, also returning the kernel, noise level and schedule it used; `blind` sets
    how an `estimate` kernel is found and trusted."""
    from .api import _join, _split, load_model

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load_model(model)
    if noise_sigma is not None and (not math.isfinite(noise_sigma) or noise_sigma < 0):
        raise UsageError(f"noise sigma must be a finite number >= 0 (0-255 scale), got {noise_sigma}")
    schedule = (schedule or PnPSchedule(iterations=iterations)).check()
    arr = np.asarray(image)
    color, alpha, squeeze = _split(arr)
    k, source = resolve_kernel(kernel, color, blind.crop, blind.estimator)
    estimated = noise_sigma is None
    sigma = estimate_noise_sigma(color) if estimated else float(noise_sigma)
    # the 8-bit rounding adds its own noise (1/sqrt(12) on the 0-255 scale) to what the sensor left
    effective = float(np.hypot(sigma, 1 / math.sqrt(12))) if color.dtype == np.uint8 else sigma
    if source.get("source") == "estimate":
        effective = max(effective, blind.sigma_floor)
    out = pnp_deconvolve(color, k, model, effective, schedule, progress=progress)
    return _join(out, alpha, squeeze), DeblurInfo(k, source, sigma, estimated, schedule, effective)


def deblur(
    image: np.ndarray, kernel, model, noise_sigma: float | None = None, iterations: int = DEFAULT_ITERATIONS,
    progress: Progress | None = None, blind: BlindSettings = BlindSettings(),
) -> np.ndarray:
    """Deblur `image` with a known or estimated kernel, the denoiser `model` as the prior.

    image: HxW, HxWxC (alpha passed through), uint8 / uint16 / float in [0, 1]; same dtype and
    shape back. kernel: a 2-D array, a .npy/.png path, or a `--kernel` spec ("motion:15,30",
    "disk:3", "gaussian:1.5", "estimate", "motion:estimate"). model: a RestorationModel or a
    model name/path ("deblur_prior", the prior trained for this loop; any denoiser works).
    noise_sigma: noise std on the 0-255 scale (None: estimated). iterations: denoiser passes
    (more: slower, see docs/deblur.md). blind: how an "estimate" kernel is found and trusted.
    """
    return deblur_with_info(image, kernel, model, noise_sigma, iterations, progress=progress, blind=blind)[0]
