"""`edge-restore-eval` / `python -m train.evaluate`: score classic baselines and models on one footing.

Every clean image is degraded once per degradation with a seeded RNG and rounded to 8 bits; every
method and model restores that identical input; outputs are rounded to 8 bits and scored with PSNR
and SSIM; time per megapixel is measured. Classic methods get the true noise sigma and the true blur
kernel (their fairest setting); models get only the degraded image.

Degradation specs (repeat --degradation for several):
  awgn:SIGMA              additive Gaussian noise, SIGMA on the 0-255 scale (awgn:25)
  poisson-gauss:SHOT,READ signal-dependent noise, variance SHOT*x + (READ/255)^2 (poisson-gauss:0.01,2)
  motion:DIR              motion blur with the kernels (.npy or .png) in DIR, one per image in turn,
                          plus --blur-noise Gaussian noise; motion:levin finds the Levin et al. kernels
                          in ../shared/datasets/blur_kernels/levin09_npy
  gauss-blur:SIGMA        Gaussian blur of std SIGMA pixels plus --blur-noise Gaussian noise
  pairs:NOISY,CLEAN       real noisy/reference pairs inside --clean itself, told apart by the end of
                          the file name, e.g. pairs:_real,_mean (real_noise_dev, PolyU layout): the
                          references are the *_mean files; scores are also given per camera prefix
                          (the part of the name before the first '_'); classic denoisers get the
                          noise sigma measured from the reference (RMS of noisy - reference) or,
                          for the -est rows, the sigma estimated from the noisy image alone
  paired:DIR              real degraded photos: DIR holds, under the same relative names as --clean,
                          the degraded version of each clean image (e.g. GoPro blur/sharp pairs);
                          nothing is synthesised, the seed is unused, and the classic methods that
                          need a true sigma or kernel are skipped (real pairs have none)

Methods (--methods, comma list; default: the ones that fit each degradation):
  identity      the degraded input itself
  nlm-opencv, nlm-opencv-lab, nlm-skimage, wavelet
                denoisers (noise-only degradations), given the true sigma; nlm-opencv-lab is
                OpenCV's colour (CIELAB) variant, nlm-opencv the 3-channel RGB one
  nlm-opencv-est, cbm3d, cbm3d-est
                the same NLM with the noise sigma estimated from the noisy image; CBM3D (the
                `bm3d` package, if installed) with the given / estimated sigma
  pnp, pnp-est  plug-and-play deconvolution with a denoiser model as the prior (--pnp-denoiser,
                repeatable; default models/denoise_int8.tflite), given the true kernel and
                sigma (pnp) or with the kernel estimated blind from the image (pnp-est); with
                both, the summary gives the kernel-estimation error ratio (Levin et al. 2009:
                error with the estimated kernel / error with the true kernel)
  wiener, rl    deconvolution (blur degradations), given the true kernel (and sigma for Wiener)

Models (--model): a .pt checkpoint, a .onnx / .tflite file, or a short name as for edge-restore
(denoise -> models/denoise_int8.tflite, $EDGE_RESTORE_MODELS first). Rows are named by file name,
with as many folders as tell two equal names apart (runs/a/best.pt, runs/b/best.pt -> a/best.pt,
b/best.pt).

Report (--out DIR): report.md, the same as a self-contained report.html, results.json and the
figures. DIR must be new or empty, so that no file of an earlier report mixes in; --overwrite
replaces an earlier report there (and refuses if DIR holds anything else).

Examples:
  python -m train.evaluate --clean ../shared/datasets/Set14 --degradation awgn:25 --model denoise --out reports/awgn25
  python -m train.evaluate --clean ../shared/datasets/Set14 --degradation motion:levin \\
      --methods identity,wiener,rl --model runs/deblur/best.pt --out reports/deblur
  python -m train.evaluate --clean ../shared/datasets/gopro_pairs/sharp \
      --degradation paired:../shared/datasets/gopro_pairs/blur --methods identity,pnp-est --out reports/gopro
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import shlex
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from edge_runtime.classic import KERNEL_SUFFIXES, load_kernel
from edge_runtime.contract import PIXEL_MAX
from edge_runtime.errors import EdgeRestoreError
from edge_runtime.metrics import psnr, ssim

from . import classic
from .data import is_held_out, list_images, load_image
from .degradations import add_gaussian_noise, add_poisson_gaussian_noise, blur, gaussian_kernel, quantize_8bit

if TYPE_CHECKING:  # the runtime's deblur module loads only when pnp rows are asked for
    from edge_runtime.deblur import BlindSettings

#: Variance of the rounding error of an 8-bit image, in (0-255 units)^2: uniform on [-1/2, 1/2].
ROUNDING_VARIANCE = 1.0 / 12.0
#: Default noise added after blurring: 1% of the range, sigma 2.55 on the 0-255 scale.
DEFAULT_BLUR_NOISE = 2.55
#: Kernel folder that `motion:levin` resolves to, relative to the places listed in `_levin_dir`.
LEVIN_SUBDIR = Path("shared/datasets/blur_kernels/levin09_npy")
#: Smallest image side edge_runtime.metrics.ssim accepts (its 11x11 Gaussian window).
SSIM_MIN_SIDE = 11
KINDS = ("awgn", "poisson-gauss", "motion", "gauss-blur", "paired", "pairs")
NOISE_KINDS = ("awgn", "poisson-gauss", "pairs")
BLUR_KINDS = ("motion", "gauss-blur")


class EvalError(ValueError):
    """A bad argument, spec, input folder or model: reported as one line and exit status 1."""


# --------------------------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """What a classic method is told about one degraded image: the truth."""

    sigma: float  # noise std on the 0-255 scale, including the 8-bit rounding noise
    kernel: np.ndarray | None = None
    kernel_name: str | None = None


@dataclass(frozen=True)
class Degradation:
    """A parsed --degradation spec."""

    spec: str
    kind: str
    sigma: float = 0.0  # awgn sigma, or the noise added after blurring (0-255 scale)
    shot: float = 0.0
    read: float = 0.0
    blur_sigma: float = 0.0
    kernels: tuple[tuple[str, np.ndarray], ...] = field(default=(), compare=False)
    kernel_dir: str = ""
    pairs_dir: str = ""  # paired: folder of the real degraded images
    noisy_suffix: str = ""  # pairs: end of a noisy file's stem (its reference ends in clean_suffix)
    clean_suffix: str = ""

    @property
    def is_blur(self) -> bool:
        return self.kind in BLUR_KINDS

    def describe(self) -> str:
        if self.kind == "awgn":
            return f"additive white Gaussian noise, sigma {self.sigma:g} (0-255 scale)"
        if self.kind == "poisson-gauss":
            return (f"Poisson-Gaussian noise, variance {self.shot:g} * x + ({self.read:g}/255)^2; "
                    "denoisers get the image's RMS noise sigma")
        noise = f" + Gaussian noise sigma {self.sigma:g}" if self.sigma > 0 else ""
        if self.kind == "pairs":
            return (f"real noisy photos (`*{self.noisy_suffix}`) against their references (`*{self.clean_suffix}`); "
                    "classic denoisers get the sigma measured from the reference")
        if self.kind == "paired":
            return f"real degraded photos from `{self.pairs_dir}`, paired by name with the clean ones"
        if self.kind == "gauss-blur":
            return f"Gaussian blur, std {self.blur_sigma:g} px{noise}"
        names = ", ".join(n for n, _ in self.kernels)
        return f"motion blur, {len(self.kernels)} kernel(s) from `{self.kernel_dir}` ({names}), one per image in turn{noise}"

    def apply(self, clean: np.ndarray, index: int, seed: int, name: str = "") -> tuple[np.ndarray, Side]:
        """Degrade image number `index` reproducibly (RNG keyed on seed, spec and index); 8-bit result.

        `paired` reads the degraded image `name` (the clean image's relative path) from pairs_dir.
        """
        if self.kind == "paired":
            return self._read_pair(clean, name), Side(sigma=0.0)
        if self.kind == "pairs":
            noisy = self._read_noisy(clean, name)
            residual = (noisy.astype(np.float64) - clean) * PIXEL_MAX
            return noisy, Side(sigma=float(np.sqrt(np.mean(residual**2))))
        rng = np.random.default_rng([seed, zlib.crc32(self.spec.encode()), index])
        kernel, kname = None, None
        if self.kind == "awgn":
            out = add_gaussian_noise(clean, self.sigma, rng)
            sigma = self.sigma
        elif self.kind == "poisson-gauss":
            out = add_poisson_gaussian_noise(clean, self.shot, self.read, rng)
            var = self.shot * np.clip(clean.astype(np.float64), 0.0, None) + (self.read / PIXEL_MAX) ** 2
            sigma = float(np.sqrt(var.mean())) * PIXEL_MAX
        else:
            kname, kernel = self.kernels[index % len(self.kernels)]
            out = blur(clean, kernel)
            if self.sigma > 0:
                out = add_gaussian_noise(out, self.sigma, rng)
            sigma = self.sigma
        given = math.sqrt(sigma * sigma + ROUNDING_VARIANCE)
        return quantize_8bit(out), Side(sigma=given, kernel=kernel, kernel_name=kname)


    def reference_names(self, names: list[str]) -> list[str]:
        """pairs: the references among `names` (their stem ends in clean_suffix)."""
        return [n for n in names if Path(n).stem.endswith(self.clean_suffix)]

    def _read_noisy(self, clean: np.ndarray, name: str) -> np.ndarray:
        ref = Path(name)
        stem = ref.stem[: len(ref.stem) - len(self.clean_suffix)] + self.noisy_suffix
        matches = [p for p in (Path(self.pairs_dir) / ref.parent).glob(f"{stem}.*") if p.suffix.lower() == ref.suffix.lower()]
        if len(matches) != 1:
            raise EvalError(f"pairs: no single noisy image {stem}{ref.suffix} beside the reference {name}")
        return self._checked(matches[0], clean)

    def _read_pair(self, clean: np.ndarray, name: str) -> np.ndarray:
        path = Path(self.pairs_dir) / name
        if not path.is_file():
            raise EvalError(f"paired: no degraded image {path} for the clean image {name}")
        return self._checked(path, clean)

    def _checked(self, path: Path, clean: np.ndarray) -> np.ndarray:
        try:
            degraded = load_image(path, clean.shape[2])
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a clear input error
            raise EvalError(f"cannot read {path}: {exc}") from None
        if degraded.shape != clean.shape:
            raise EvalError(f"{self.kind}: {path} is {degraded.shape[1]}x{degraded.shape[0]}, its clean image "
                            f"{clean.shape[1]}x{clean.shape[0]}")
        return degraded


def _levin_dir() -> Path:
    repo = Path(__file__).resolve().parents[1]
    candidates = [Path.cwd() / LEVIN_SUBDIR, Path.cwd().parent / LEVIN_SUBDIR, repo.parent / LEVIN_SUBDIR, repo / LEVIN_SUBDIR]
    for c in candidates:
        if c.is_dir():
            return c
    raise EvalError("motion:levin: no Levin kernel folder found; looked in " + ", ".join(str(c) for c in candidates)
                    + " (give the folder instead: motion:DIR)")


def load_kernels(folder: str | Path) -> tuple[tuple[str, np.ndarray], ...]:
    """All .npy / .png blur kernels in `folder` (sorted by name), each normalised to sum 1."""
    root = Path(folder)
    if not root.is_dir():
        raise EvalError(f"kernel folder not found: {root}")
    kernels = []
    for p in sorted(root.iterdir()):
        if p.suffix.lower() not in KERNEL_SUFFIXES:
            continue
        try:
            k = load_kernel(p)  # the runtime's reader: one set of checks and messages
        except EdgeRestoreError as exc:
            raise EvalError(str(exc)) from exc
        kernels.append((p.stem, k.astype(np.float32)))
    if not kernels:
        raise EvalError(f"no .npy or .png kernels in {root}")
    return tuple(kernels)


def _numbers(text: str, count: int, spec: str) -> list[float]:
    parts = text.split(",") if text else []
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) and v >= 0 for v in values):
        want = "one non-negative number" if count == 1 else f"{count} non-negative numbers separated by commas"
        raise EvalError(f"bad degradation {spec!r}: expected {want} after the colon")
    return values


def parse_degradation(spec: str, blur_noise: float = DEFAULT_BLUR_NOISE) -> Degradation:
    """Parse one --degradation SPEC (see the module docstring); raises EvalError with the reason."""
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in KINDS or not sep:
        raise EvalError(f"bad degradation {spec!r}: expected KIND:ARGS with KIND one of {', '.join(KINDS)} "
                        "(e.g. awgn:25, poisson-gauss:0.01,2, motion:levin, gauss-blur:1.6, paired:DIR)")
    if kind == "awgn":
        (sigma,) = _numbers(arg, 1, spec)
        return Degradation(spec, kind, sigma=sigma)
    if kind == "poisson-gauss":
        shot, read = _numbers(arg, 2, spec)
        return Degradation(spec, kind, shot=shot, read=read)
    if kind == "pairs":
        noisy, sep2, ref = arg.partition(",")
        if not sep2 or not noisy or not ref or noisy == ref:
            raise EvalError(f"bad degradation {spec!r}: pairs:NOISY,CLEAN needs two different name endings, "
                            "e.g. pairs:_real,_mean")
        return Degradation(spec, kind, noisy_suffix=noisy, clean_suffix=ref)
    if kind == "paired":
        if not arg or not Path(arg).is_dir():
            raise EvalError(f"bad degradation {spec!r}: paired:DIR needs the folder of degraded images")
        return Degradation(spec, kind, pairs_dir=arg)
    if blur_noise < 0 or not math.isfinite(blur_noise):
        raise EvalError(f"--blur-noise must be a non-negative number, got {blur_noise}")
    if kind == "gauss-blur":
        (bs,) = _numbers(arg, 1, spec)
        if bs <= 0:
            raise EvalError(f"bad degradation {spec!r}: the blur sigma must be > 0")
        return Degradation(spec, kind, sigma=blur_noise, blur_sigma=bs, kernels=((f"gauss{bs:g}", gaussian_kernel(bs)),))
    if not arg:
        raise EvalError(f"bad degradation {spec!r}: give a kernel folder (motion:DIR) or motion:levin")
    folder = _levin_dir() if arg.lower() == "levin" else Path(arg)
    return Degradation(spec, kind, sigma=blur_noise, kernels=load_kernels(folder), kernel_dir=str(folder))


# --------------------------------------------------------------------------------------------
# Methods and models
# --------------------------------------------------------------------------------------------

Restore = Callable[[np.ndarray, Side], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    fn: Restore
    applies_to: tuple[str, ...]  # degradation kinds
    side_info: str
    skip_reason: str = ""
    align: int = 0  # > 0: scored after the best whole-pixel shift within +-align px (blind kernels)
    notes: Callable[[], dict] | None = None  # what the last call found (blind kernels), kept per image


CLASSIC_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("identity", lambda img, side: img, KINDS, "none (this is the degraded input)"),
        Method("nlm-opencv", lambda img, side: classic.nlm_opencv(img, side.sigma), NOISE_KINDS,
               f"true sigma, fastNlMeansDenoising on RGB, h = {classic.NLM_OPENCV_H_FACTOR} sigma",
               "a denoiser; this degradation is a blur"),
        Method("nlm-opencv-lab", lambda img, side: classic.nlm_opencv(img, side.sigma, colorspace="lab"), NOISE_KINDS,
               f"true sigma, fastNlMeansDenoisingColored (CIELAB), h = hColor = {classic.NLM_OPENCV_LAB_H_FACTOR} sigma",
               "a denoiser; this degradation is a blur"),
        Method("nlm-skimage", lambda img, side: classic.nlm_skimage(img, side.sigma), NOISE_KINDS,
               f"true sigma, h = {classic.NLM_SKIMAGE_H_FACTOR} sigma, fast mode", "a denoiser; this degradation is a blur"),
        Method("wavelet", lambda img, side: classic.wavelet_denoise(img, side.sigma), NOISE_KINDS,
               f"true sigma, BayesShrink, YCbCr, {classic.WAVELET}", "a denoiser; this degradation is a blur"),
        Method("nlm-opencv-est", lambda img, side: classic.nlm_opencv(img, classic.estimate_noise_sigma(img)),
               NOISE_KINDS, "sigma estimated from the noisy image (wavelet MAD), fastNlMeansDenoising on RGB",
               "a denoiser; this degradation is a blur"),
        Method("cbm3d", lambda img, side: cbm3d(img, side.sigma), NOISE_KINDS,
               "true (or reference-measured) sigma, CBM3D from the bm3d package", "a denoiser; this degradation is a blur"),
        Method("cbm3d-est", lambda img, side: cbm3d(img, classic.estimate_noise_sigma(img)), NOISE_KINDS,
               "sigma estimated from the noisy image, CBM3D from the bm3d package", "a denoiser; this degradation is a blur"),
        Method("wiener", lambda img, side: classic.wiener_deconvolve(img, side.kernel, sigma=side.sigma), BLUR_KINDS,
               "true kernel and true sigma (1/f^2 image prior)", "needs a blur kernel; this degradation has none"),
        Method("rl", lambda img, side: classic.richardson_lucy(img, side.kernel), BLUR_KINDS,
               f"true kernel, {classic.RL_ITERATIONS} iterations", "needs a blur kernel; this degradation has none"),
    )
}
DEFAULT_METHODS = {
    "noise": ("identity", "nlm-opencv", "nlm-skimage", "wavelet"),
    "pairs": ("identity", "nlm-opencv", "nlm-opencv-est", "cbm3d", "cbm3d-est"),
    "blur": ("identity", "wiener", "rl"),
    "paired": ("identity",),
}
PAIRED_SKIP = "needs the true sigma or blur kernel; real pairs have neither"


PNP_METHODS = ("pnp", "pnp-est")
#: Shift search of blind results: the Levin and 12-kernel kernels are off-centre by up to ~4.3 px.
BLIND_ALIGN = 5


def best_shift(restored: np.ndarray, clean: np.ndarray, limit: int) -> np.ndarray:
    """`restored` moved by the whole-pixel shift within +-limit px that scores best against `clean`
    (edges replicated), as Levin et al. align blind results before measuring their error."""
    padded = np.pad(restored, ((limit, limit), (limit, limit), (0, 0)), mode="edge")
    h, w = clean.shape[:2]
    inner = (slice(limit, h - limit), slice(limit, w - limit))
    best, best_err = restored, math.inf
    for dy in range(-limit, limit + 1):
        for dx in range(-limit, limit + 1):
            shifted = padded[limit + dy : limit + dy + h, limit + dx : limit + dx + w]
            err = float(np.mean((shifted[inner] - clean[inner]) ** 2))
            if err < best_err:
                best, best_err = shifted, err
    return best
DEFAULT_PNP_DENOISER = Path(__file__).resolve().parents[1] / "models" / "denoise_int8.tflite"


def build_pnp_methods(requested: list[str], denoisers: list[str], threads: int = 1,
                      blind: BlindSettings | None = None) -> list[Method]:
    """pnp / pnp-est rows, one per denoiser file, named pnp:FILE and pnp-est:FILE; `blind`
    (edge_runtime.deblur.BlindSettings, default the runtime's) sets how pnp-est estimates."""
    wanted = [n for n in PNP_METHODS if n in requested]
    if not wanted:
        return []
    from edge_runtime.api import load_model
    from edge_runtime.deblur import BlindSettings, deblur

    blind = blind or BlindSettings()

    methods = []
    denoisers = denoisers or [str(DEFAULT_PNP_DENOISER)]
    for path, name in zip(denoisers, _model_names(denoisers)):
        try:
            model = load_model(path, threads=threads if threads > 0 else None)
        except Exception as exc:  # noqa: BLE001 - the runtime reports invalid models with one-line errors
            raise EvalError(f"--pnp-denoiser {path}: {exc}") from None
        if "pnp" in wanted:
            methods.append(Method(f"pnp:{name}", lambda img, side, m=model: deblur(img, side.kernel, m, side.sigma),
                                  BLUR_KINDS, f"true kernel and sigma, plug-and-play with {name} as the prior"))
        if "pnp-est" in wanted:
            found = BlindNotes()
            methods.append(Method(f"pnp-est:{name}", lambda img, side, m=model, f=found: f.deblur(img, m, side.sigma or None, blind),
                                  (*BLUR_KINDS, "paired"), f"kernel estimated from the image, true sigma (real pairs: estimated), plug-and-play with {name}; "
                                  f"scored after the best whole-pixel shift within +-{BLIND_ALIGN} px (a blind kernel is "
                                  "centred on its centre of mass, the true one need not be)", align=BLIND_ALIGN,
                                  notes=found.last))
    return methods


class BlindNotes:
    """Blind deblurring that keeps what the estimate was for the per-image rows: the kept run's
    kernel peak and whether it was taken for no blur (KernelEstimateSettings.no_blur_peak)."""

    def __init__(self) -> None:
        self._last: dict = {}

    def deblur(self, img: np.ndarray, model: Any, sigma: float | None, blind: BlindSettings) -> np.ndarray:
        """`deblur(img, "estimate", model, sigma, blind=blind)`, noting what the estimate was."""
        from edge_runtime.deblur import deblur_with_info

        out, info = deblur_with_info(img, "estimate", model, sigma, blind=blind)
        self._last = {"kernel_peak": info.kernel_source["peak"], "no_blur": "blur" in info.kernel_source}
        return out

    def last(self) -> dict:
        return dict(self._last)


def error_ratios(deg: dict) -> dict[str, dict[str, float]]:
    """Per denoiser: the median and the share <= 3 of the per-image kernel-estimation error ratio."""
    out = {}
    for n in deg["methods"]:
        if n.startswith("pnp-est:") and f"pnp:{n[8:]}" in deg["methods"]:
            ratios = [10 ** ((r["psnr"][f"pnp:{n[8:]}"] - r["psnr"][n]) / 10) for r in deg["per_image"]]
            out[n[8:]] = {"median": float(np.median(ratios)), "share_at_most_3": float(np.mean(np.array(ratios) <= 3))}
    return out


def _has_bm3d() -> bool:
    import importlib.util

    return importlib.util.find_spec("bm3d") is not None


def cbm3d(img: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D (Dabov et al. 2007) from the `bm3d` package, sigma on the 0-255 scale."""
    import bm3d

    return np.asarray(bm3d.bm3d_rgb(img.astype(np.float64), max(float(sigma), 1e-3) / PIXEL_MAX), dtype=np.float32)


def _pad_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else img


def torch_runner(path: Path, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """Run a .pt checkpoint with torch: reflection-pad to the model's size multiple, restore, crop back.

    A single-channel model restores each channel of a colour image separately. `threads` > 0 sets
    torch's intra-op threads (0 leaves torch's default).
    """
    import torch

    from .checkpoint import load_restorer


    model, _ = load_restorer(path)
    multiple = model.cfg.size_multiple
    channels = model.cfg.channels

    def run(img: np.ndarray) -> np.ndarray:
        h, w, c = img.shape
        if channels == c:
            planes = [img]
        elif channels == 1:
            planes = [img[..., i : i + 1] for i in range(c)]
        else:
            raise EvalError(f"{path.name}: a {channels}-channel model cannot restore a {c}-channel image")
        outs = []
        previous = torch.get_num_threads()
        if threads > 0:
            torch.set_num_threads(threads)  # only for this call: the process-wide setting is restored
        try:
            with torch.no_grad():
                for plane in planes:
                    x = torch.from_numpy(np.ascontiguousarray(_pad_to_multiple(plane, multiple).transpose(2, 0, 1)))[None]
                    outs.append(model(x)[0].numpy().transpose(1, 2, 0)[:h, :w])
        finally:
            torch.set_num_threads(previous)
        return np.concatenate(outs, axis=2).astype(np.float32)

    return run


def runtime_runner(path: Path, threads: int = 1, strength: float = 1.0, views: int = 1,
                   pixel_shuffle: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Run a .onnx / .tflite model through the board runtime's `edge_runtime.api.load_model`
    (at `strength`, with `views` and `pixel_shuffle`: see `edge-restore --strength / --ensemble /
    --pixel-shuffle`)."""
    try:
        from edge_runtime.api import load_model  # lazy: the runtime is optional for the classic baselines
    except ImportError as exc:
        raise EvalError(f"{path}: running .onnx/.tflite models needs edge_runtime.api.load_model, "
                        f"which is not available here ({exc}); .pt checkpoints run with torch") from None
    try:
        model = load_model(str(path), threads=threads if threads > 0 else None, strength=strength, views=views,
                           pixel_shuffle=pixel_shuffle)
    except Exception as exc:  # noqa: BLE001 - the runtime reports invalid models with one-line errors
        raise EvalError(f"{path}: {exc}") from None
    return lambda img: np.asarray(model.restore(img), dtype=np.float32)


#: One extra row per runtime model: (row suffix after "@", load_model options, what the row is).
Variant = tuple[str, dict[str, Any], str]


def variant_methods(paths: list[str], names: list[str], variants: list[Variant], threads: int = 1) -> list[Method]:
    """Extra rows NAME@SUFFIX for each runtime model (.onnx/.tflite), one per variant."""
    rows = []
    for path, name in zip(paths, names):
        if Path(path).suffix.lower() not in (".onnx", ".tflite"):
            continue
        for suffix, options, what in variants:
            run = runtime_runner(Path(path), threads, **options)
            rows.append(Method(f"{name}@{suffix}", lambda img, side, run=run: run(img), KINDS,
                               f"none: blind learned model {what} ({Path(path).name})"))
    return rows


def strength_methods(paths: list[str], names: list[str], strengths: list[float], threads: int = 1) -> list[Method]:
    """Extra rows NAME@S for each runtime model (.onnx/.tflite) at each restoration strength S != 1."""
    variants = [(f"{s:g}", {"strength": s}, f"at strength {s:g}") for s in strengths if s != 1.0]
    return variant_methods(paths, names, variants, threads)


#: How an --ensembles item names the pixel shuffle: "4+shuffle" is 4 views plus the pixel shuffle.
SHUFFLE_SUFFIX = "+shuffle"


def parse_ensembles(text: str) -> list[tuple[int, bool]]:
    """--ensembles "2,4,1+shuffle" -> [(2, False), (4, False), (1, True)]: (views, pixel_shuffle)."""
    from edge_runtime.ensemble import VIEW_COUNTS

    items = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        shuffle = item.endswith(SHUFFLE_SUFFIX)
        count = item[: -len(SHUFFLE_SUFFIX)] if shuffle else item
        if not count.isdigit() or int(count) not in VIEW_COUNTS:
            raise EvalError(f"--ensembles item {item!r} is not N or N{SHUFFLE_SUFFIX} with N in "
                            f"{', '.join(map(str, VIEW_COUNTS))}")
        items.append((int(count), shuffle))
    return items


def ensemble_methods(paths: list[str], names: list[str], ensembles: list[tuple[int, bool]],
                     threads: int = 1) -> list[Method]:
    """Extra rows NAME@xN (N views) / NAME@xN+shuffle for each runtime model (.onnx/.tflite)."""
    variants = [(f"x{views}{SHUFFLE_SUFFIX if shuffle else ''}", {"views": views, "pixel_shuffle": shuffle},
                 f"with {views} view(s){' and the pixel shuffle' if shuffle else ''}")
                for views, shuffle in ensembles if views != 1 or shuffle]
    return variant_methods(paths, names, variants, threads)


def load_model_method(path: str | Path, name: str, threads: int = 1) -> Method:
    p = Path(path)
    if not p.is_file():
        raise EvalError(f"model not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".pt":
        from .checkpoint import CheckpointError

        try:
            run = torch_runner(p, threads)
        except CheckpointError as exc:
            raise EvalError(str(exc)) from None
        how = "torch"
    elif suffix in (".onnx", ".tflite"):
        run = runtime_runner(p, threads)
        how = "edge_runtime"
    else:
        raise EvalError(f"{p}: unknown model type {suffix!r} (use .pt, .onnx or .tflite)")
    return Method(name, lambda img, side: run(img), KINDS, f"none: blind learned model ({how}, {p.name})")


def resolve_methods(deg: Degradation, requested: list[str] | None, models: list[Method]) -> tuple[list[Method], dict[str, str]]:
    """The methods to run on `deg` (requested ones that fit, or the defaults) plus skipped ones with why."""
    group = deg.kind if deg.kind in ("paired", "pairs") else "blur" if deg.is_blur else "noise"
    names = list(requested) if requested is not None else list(DEFAULT_METHODS[group])
    chosen, skipped = [], {}
    models = [m for m in models if deg.kind in m.applies_to]
    for n in names:
        if n in PNP_METHODS:
            continue  # built per denoiser in build_pnp_methods, passed in with the models
        m = CLASSIC_METHODS[n]
        if m.name.startswith("cbm3d") and not _has_bm3d():
            skipped[n] = "the bm3d package is not installed (pip install bm3d)"
        elif deg.kind in m.applies_to:
            chosen.append(m)
        else:
            skipped[n] = PAIRED_SKIP if deg.kind == "paired" else m.skip_reason
    return chosen + models, skipped


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def centre_crop(img: np.ndarray, side: int | None) -> np.ndarray:
    if not side:
        return img
    h, w = img.shape[:2]
    ch, cw = min(side, h), min(side, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y : y + ch, x : x + cw])


def _warm_up(methods: list[Method], degraded: np.ndarray, side: Side, done: set[str]) -> None:
    """Run each method once, untimed, on a small crop: lazy imports and first-call set-up are not timed."""
    small = centre_crop(degraded, 64)
    for m in methods:
        if m.name not in done:
            m.fn(small.copy(), side)
            done.add(m.name)


def evaluate(
    images: list[tuple[str, np.ndarray]],
    degradations: list[Degradation],
    requested: list[str] | None,
    models: list[Method],
    seed: int,
    progress: bool = True,
    perceptual: bool = False,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Degrade, restore and score. Returns (per-degradation results, first-image examples for crops).

    `perceptual` also scores NIQE and BRISQUE of every output (and LPIPS when it can run offline).
    """
    from tqdm import tqdm

    from .nr_metrics import PerceptualScorer, mean_of_scored

    scorer = PerceptualScorer() if perceptual else None

    out: dict[str, Any] = {}
    examples: dict[str, dict[str, Any]] = {}
    warmed: set[str] = set()
    for deg in degradations:
        methods, skipped = resolve_methods(deg, requested, models)
        names = [m.name for m in methods]
        rows = []
        total_s = {n: 0.0 for n in names}
        megapixels = 0.0
        deg_images = images
        if deg.kind == "pairs":
            keep = set(deg.reference_names([n for n, _ in images]))
            deg_images = [(n, im) for n, im in images if n in keep]
            if not deg_images:
                raise EvalError(f"{deg.spec}: no reference image (name ending in {deg.clean_suffix!r}) in --clean")
        for index, (name, clean) in enumerate(tqdm(deg_images, desc=deg.spec, unit="img", disable=not progress or None)):
            degraded, side = deg.apply(clean, index, seed, name)
            _warm_up(methods, degraded, side, warmed)
            mp = clean.shape[0] * clean.shape[1] / 1e6
            megapixels += mp
            row: dict[str, Any] = {
                "image": name, "kernel": side.kernel_name, "sigma_given": side.sigma,
                "input_sha256": hashlib.sha256(np.round(degraded * PIXEL_MAX).astype(np.uint8).tobytes()).hexdigest(),
                "psnr": {}, "ssim": {}, "seconds": {},
            }
            if scorer:  # where "natural" is on this image: the metrics of the clean reference itself
                row["clean_scores"] = scorer(clean, clean)
            outputs = {}
            for m in methods:
                t0 = time.perf_counter()
                restored = m.fn(degraded.copy(), side)
                dt = time.perf_counter() - t0
                restored = np.asarray(restored, dtype=np.float32)
                if restored.shape != clean.shape:
                    raise EvalError(f"{m.name} returned shape {restored.shape} for a {clean.shape} image ({name})")
                restored = quantize_8bit(restored)
                if m.align:
                    restored = best_shift(restored, clean, m.align)
                row["psnr"][m.name] = psnr(restored, clean)
                row["ssim"][m.name] = ssim(restored, clean)
                row["seconds"][m.name] = dt
                if m.notes is not None:
                    row.setdefault("notes", {})[m.name] = m.notes()
                for metric, value in (scorer(restored, clean) if scorer else {}).items():
                    row.setdefault(metric, {})[m.name] = value
                total_s[m.name] += dt
                if index == 0:
                    outputs[m.name] = restored
            if index == 0:
                examples[deg.spec] = {"image": name, "clean": clean, "degraded": degraded, "outputs": outputs,
                                      "psnr": dict(row["psnr"])}
            rows.append(row)
        mean = {
            n: {
                "psnr": float(np.mean([r["psnr"][n] for r in rows])),
                "ssim": float(np.mean([r["ssim"][n] for r in rows])),
                "seconds": total_s[n],
                "megapixels": megapixels,
                "sec_per_mp": total_s[n] / megapixels if megapixels else None,
                **{k: mean_of_scored([r[k][n] for r in rows]) for k in (scorer.names if scorer else ())},
            }
            for n in names
        }
        out[deg.spec] = {
            "spec": deg.spec, "kind": deg.kind, "description": deg.describe(),
            "noise_sigma": deg.sigma if deg.kind != "poisson-gauss" else None,
            "shot": deg.shot if deg.kind == "poisson-gauss" else None,
            "read": deg.read if deg.kind == "poisson-gauss" else None,
            "blur_sigma": deg.blur_sigma if deg.kind == "gauss-blur" else None,
            "kernels": [k for k, _ in deg.kernels],
            "methods": names,
            "side_info": {m.name: m.side_info for m in methods},
            "skipped": skipped,
            **({"perceptual": list(scorer.names), "lpips_skipped": scorer.lpips_skipped,
                "clean_mean": {k: mean_of_scored([r["clean_scores"][k] for r in rows]) for k in scorer.names}}
               if scorer else {}),
            "mean": mean,
            "per_group": _group_means(rows, names) if deg.kind == "pairs" else None,
            "per_image": rows,
        }
    return out, examples


def camera_prefix(name: str) -> str:
    """The camera a real pair came from: its file name up to the first '_' (PolyU: Canon5D2_...)."""
    return Path(name).name.split("_", 1)[0]


def _group_means(rows: list[dict], names: list[str]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(camera_prefix(r["image"]), []).append(r)
    return {g: {n: float(np.mean([r["psnr"][n] for r in rs])) for n in names} | {"images": len(rs)}
            for g, rs in sorted(groups.items())}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-restore-eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", required=True, metavar="DIR", help="folder of clean images (recursive)")
    p.add_argument("--degradation", action="append", required=True, metavar="SPEC",
                   help="awgn:SIGMA | poisson-gauss:SHOT,READ | motion:DIR|levin | gauss-blur:SIGMA | paired:DIR "
                        "(repeatable; see above)")
    p.add_argument("--blur-noise", type=float, default=DEFAULT_BLUR_NOISE,
                   help="Gaussian noise sigma (0-255) added after blurring (default %(default)s, i.e. 1%%)")
    p.add_argument("--methods", default=None,
                   help=f"comma list of classic methods ({', '.join(CLASSIC_METHODS)}); "
                        "default: identity plus the denoisers for noise, identity,wiener,rl for blur, identity for paired")
    p.add_argument("--model", action="append", default=[], metavar="PATH",
                   help=".pt, .onnx or .tflite model, or a short name as for edge-restore (denoise -> "
                        "models/denoise_int8.tflite); repeatable; rows are named by file, with folders where "
                        "two files share a name")
    p.add_argument("--strengths", default="", metavar="LIST",
                   help="also run each .onnx/.tflite --model at these restoration strengths (comma list, e.g. "
                        "0.5,0.75,1.25; rows NAME@S; see edge-restore --strength)")
    p.add_argument("--ensembles", default="", metavar="LIST",
                   help="also run each .onnx/.tflite --model self-ensembled: comma list of N (views, 1/2/4/8) or "
                        f"N{SHUFFLE_SUFFIX} (plus the pixel shuffle), e.g. 4,1{SHUFFLE_SUFFIX}; rows NAME@xN; see "
                        "edge-restore --ensemble / --pixel-shuffle")
    p.add_argument("--pnp-denoiser", action="append", default=[], metavar="PATH",
                   help="denoiser (.tflite/.onnx) for the pnp / pnp-est methods (repeatable; default "
                        "models/denoise_int8.tflite)")
    p.add_argument("--blind-crop", type=int, default=None, metavar="N",
                   help="pnp-est: side of the crop the kernel is estimated on (default: the runtime's, "
                        "edge_runtime.deblur.BlindSettings)")
    p.add_argument("--blind-sigma-floor", type=float, default=None, metavar="S",
                   help="pnp-est: least noise level (0-255) the schedule assumes with an estimated kernel "
                        "(default: the runtime's; 0 turns the floor off)")
    p.add_argument("--blind-setting", action="append", default=[], metavar="NAME=VALUE",
                   help="pnp-est: change one setting of the kernel estimator (repeatable; "
                        "edge_runtime.kernel_estimation.KernelEstimateSettings), e.g. threshold=0.02")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradations (default %(default)s)")
    p.add_argument("--max-images", type=int, default=None, metavar="N", help="use only the first N images (sorted by path)")
    p.add_argument("--held-out", action="store_true",
                   help="use only the training code's held-out validation slice of --clean (images never trained on)")
    p.add_argument("--crop", type=int, default=None, metavar="N", help="centre-crop every image to at most NxN (speed)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="report folder: report.md, report.html, results.json and figures (created; an existing "
                        "non-empty folder is refused unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the previous report in --out (only a report's files are removed; any other "
                        "file there is refused)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for OpenCV, torch and the edge runtime (default 1: every method on one core, so "
                        "times compare per core; 0: each library's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--perceptual", action="store_true",
                   help="also score NIQE and BRISQUE (no-reference, lower is better; ~0.5 s per output and "
                        "megapixel) and LPIPS when the lpips package and its backbone weights are installed")
    return p


def _model_names(paths: list[str | Path]) -> list[str]:
    """Row names of models: the file name, or as many trailing folders as tell equal names apart.

    runs/a/best.pt and runs/b/best.pt become a/best.pt and b/best.pt; the same path given twice
    (or a name taken by a classic method) gets #2, #3, ...
    """
    parts = [Path(p).parts or (str(p),) for p in paths]
    depth = [1] * len(parts)

    def label(i: int) -> str:
        return Path(*parts[i][-depth[i]:]).as_posix()

    while True:
        labels = [label(i) for i in range(len(parts))]
        # grow only names shared with a *different* path: the same file twice keeps its short name
        grow = [i for i, name in enumerate(labels) if depth[i] < len(parts[i])
                and any(labels[j] == name and parts[j] != parts[i] for j in range(len(parts)))]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    names: list[str] = []
    for base in labels:
        name, i = base, 2
        while name in names or name in CLASSIC_METHODS:
            name, i = f"{base}#{i}", i + 1
        names.append(name)
    return names


def resolve_models(specs: list[str]) -> list[str]:
    """--model values as paths: an existing file as given, else a short name the runtime knows
    (`denoise` -> models/denoise_int8.tflite, as `edge-restore --model denoise`)."""
    from edge_runtime.api import resolve_model
    from edge_runtime.errors import ModelError

    paths = []
    for spec in specs:
        if Path(spec).exists() or Path(spec).suffix.lower() == ".pt":  # a missing .pt: load_model_method says so
            paths.append(spec)
            continue
        try:
            paths.append(str(resolve_model(spec)))
        except ModelError as exc:
            raise EvalError(f"--model {spec}: {exc}") from None
    return paths


def blind_settings(args: argparse.Namespace) -> BlindSettings:
    """edge_runtime.deblur.BlindSettings from --blind-crop / --blind-sigma-floor / --blind-setting
    (EvalError if out of range)."""
    from edge_runtime.deblur import BlindSettings

    blind = BlindSettings()
    if args.blind_crop is not None:
        if args.blind_crop < 64:  # estimate_kernel needs twice its 31 px kernel
            raise EvalError(f"--blind-crop must be at least 64 px, got {args.blind_crop}")
        blind = replace(blind, crop=args.blind_crop)
    if args.blind_sigma_floor is not None:
        if not (math.isfinite(args.blind_sigma_floor) and args.blind_sigma_floor >= 0):
            raise EvalError(f"--blind-sigma-floor must be a number >= 0, got {args.blind_sigma_floor}")
        blind = replace(blind, sigma_floor=args.blind_sigma_floor)
    if args.blind_setting:
        from edge_runtime.errors import KernelError

        try:
            blind = replace(blind, estimator=blind.estimator.with_overrides(args.blind_setting))
        except KernelError as exc:
            raise EvalError(f"--blind-setting: {exc}") from None
    return blind


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Everything main() does, raising EvalError on bad input. Returns the results dictionary."""
    from .report import ReportFolderError, report_files_in, write_report

    requested = None
    if args.methods is not None:
        requested = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in requested if m not in CLASSIC_METHODS and m not in PNP_METHODS]
        if unknown or not requested:
            raise EvalError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from "
                            f"{', '.join([*CLASSIC_METHODS, *PNP_METHODS])}")
        requested = list(dict.fromkeys(requested))
    if args.max_images is not None and args.max_images < 1:
        raise EvalError("--max-images must be >= 1")
    if args.crop is not None and args.crop < 16:
        raise EvalError("--crop must be >= 16")
    specs = list(dict.fromkeys(args.degradation))
    degradations = [parse_degradation(s, args.blur_noise) for s in specs]
    degradations = [replace(d, pairs_dir=str(args.clean)) if d.kind == "pairs" else d for d in degradations]
    try:
        paths = list_images(args.clean)
    except FileNotFoundError as exc:
        raise EvalError(str(exc)) from None
    if args.held_out:
        paths = [p for p in paths if is_held_out(p)]
    if not paths:
        raise EvalError(f"no images in {args.clean}" + (" in the held-out split" if args.held_out else ""))
    paths = paths[: args.max_images] if args.max_images else paths
    root = Path(args.clean)
    images = []
    for p in paths:
        try:
            img = load_image(p, 3)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a clear input error
            raise EvalError(f"cannot read {p}: {exc}") from None
        if min(img.shape[:2]) < SSIM_MIN_SIDE:
            raise EvalError(f"{p}: {img.shape[1]}x{img.shape[0]} is too small to score (SSIM needs at least "
                            f"{SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels)")
        images.append((str(p.relative_to(root)), centre_crop(img, args.crop)))
    if args.threads < 0:
        raise EvalError("--threads must be >= 0")
    try:
        stale = report_files_in(args.out, args.overwrite)  # refused now, not after an hour of evaluation
    except ReportFolderError as exc:
        raise EvalError(str(exc)) from None
    model_paths = resolve_models(args.model)
    model_names = _model_names(model_paths)
    models = [load_model_method(p, n, args.threads) for p, n in zip(model_paths, model_names)]
    try:
        strengths = [float(v) for v in args.strengths.split(",") if v.strip()]
    except ValueError:
        raise EvalError(f"--strengths must be a comma list of numbers, got {args.strengths!r}") from None
    models += strength_methods(model_paths, model_names, strengths, args.threads)
    models += ensemble_methods(model_paths, model_names, parse_ensembles(args.ensembles), args.threads)
    blind = blind_settings(args)
    models += build_pnp_methods(requested or [], args.pnp_denoiser, args.threads, blind)
    try:
        import cv2
    except ImportError:  # only the nlm-opencv methods need it; they fail clearly if used
        cv2 = None
    cv2_threads = cv2.getNumThreads() if cv2 is not None else 0
    if cv2 is not None and args.threads > 0:
        cv2.setNumThreads(args.threads)
    try:
        results_by_deg, examples = evaluate(images, degradations, requested, models, args.seed, progress=not args.no_progress,
                                            perceptual=args.perceptual)
    finally:
        if cv2 is not None:
            cv2.setNumThreads(cv2_threads)
    results = {
        "tool": "edge-restore-eval",
        "config": {
            "clean_dir": str(args.clean), "held_out": args.held_out, "seed": args.seed, "crop": args.crop,
            "max_images": args.max_images, "perceptual": args.perceptual,
            "blur_noise": args.blur_noise, "methods": requested, "models": model_paths, "threads": args.threads,
            "pnp_denoisers": list(args.pnp_denoiser), "blind": asdict(blind),
            "command": "edge-restore-eval " + shlex.join(argv),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        },
        "images": [n for n, _ in images],
        "degradations": results_by_deg,
    }
    for path in stale:  # the previous report's files go only once the new one is ready to be written
        path.unlink()
    results["files"] = write_report(results, examples, args.out)
    return results


def summary(results: dict[str, Any]) -> str:
    lines = []
    for spec, deg in results["degradations"].items():
        lines.append(f"{spec}:")
        for n in deg["methods"]:
            m = deg["mean"][n]
            extra = "".join(f"  {k.upper()} {m[k]:.3f}" for k in deg.get("perceptual", ()) if m.get(k) is not None)
            lines.append(f"  {n:<24} PSNR {m['psnr']:6.2f} dB  SSIM {m['ssim']:.4f}  {m['sec_per_mp']:.3g} s/MP{extra}")
        for denoiser, r in error_ratios(deg).items():
            lines.append(f"  kernel-estimation error ratio ({denoiser}): median {r['median']:.2f}, "
                         f"{100 * r['share_at_most_3']:.0f}% of images at most 3")
        for n in deg["methods"]:
            notes = [r["notes"][n] for r in deg["per_image"] if n in r.get("notes", {})]
            if notes:
                peaks = [x["kernel_peak"] for x in notes]
                lines.append(f"  estimated kernels ({n.partition(':')[2]}): peak {min(peaks):.3f}-{max(peaks):.3f}, "
                             f"no blur found on {sum(x['no_blur'] for x in notes)} of {len(notes)} images")
        for group, means in (deg.get("per_group") or {}).items():
            scores = ", ".join(f"{n} {means[n]:.2f}" for n in deg["methods"])
            lines.append(f"  [{group}, {means['images']} pairs] {scores}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        results = run(args, argv)
    except EvalError as exc:
        print(f"edge-restore-eval: error: {exc}", file=sys.stderr)
        return 1
    print(summary(results))
    print(f"report: {Path(args.out) / results['files']['report']} (and {results['files']['html']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
