"""Synthetic degradations of clean images: noise, JPEG, blur kernels, and their combination.

All functions take float32 images in the contract's [0, 1] range, HxWxC, and an explicit
`numpy.random.Generator`, so every degraded sample is reproducible from a seed. Noise levels are
given on the familiar 0-255 scale.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import convolve
from scipy.signal import fftconvolve

from edge_runtime.contract import PIXEL_MAX
from edge_runtime.kernels import disk_kernel, gaussian_kernel


def quantize_8bit(img: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 8-bit grid, as a saved photo would be."""
    return (np.round(np.clip(img, 0.0, 1.0) * PIXEL_MAX) / PIXEL_MAX).astype(np.float32)


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white Gaussian noise with standard deviation `sigma` on the 0-255 scale."""
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / PIXEL_MAX)
    return img + noise


def add_poisson_gaussian_noise(
    img: np.ndarray, shot: float, read: float, rng: np.random.Generator
) -> np.ndarray:
    """Signal-dependent sensor noise: variance = shot * x + (read/255)^2.

    `shot` is the gain term on the [0, 1] scale (0.01 is a noisy phone sensor) and `read` the
    signal-independent read-noise sigma on the 0-255 scale. The Gaussian approximation of the
    Poisson term is accurate for the photon counts of real sensors and keeps this vectorised.
    """
    var = shot * np.clip(img, 0.0, None) + (read / PIXEL_MAX) ** 2
    return img + rng.standard_normal(img.shape, dtype=np.float32) * np.sqrt(var).astype(np.float32)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through Pillow's JPEG encoder at `quality` (1-95)."""
    u8 = (np.clip(img, 0.0, 1.0) * PIXEL_MAX + 0.5).astype(np.uint8)
    squeeze = u8.ndim == 3 and u8.shape[2] == 1
    buf = io.BytesIO()
    Image.fromarray(u8[..., 0] if squeeze else u8).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / PIXEL_MAX
    return out[..., None] if squeeze else out


# One implementation of the parametric kernels, shared with the board runtime's `--kernel` grammar.
defocus_kernel = disk_kernel


def motion_kernel(rng: np.random.Generator, size: int = 25, steps: int = 64) -> np.ndarray:
    """Random camera-shake kernel from a smooth random-walk trajectory (after Boracchi & Foi).

    The trajectory has inertia (velocity that drifts and is damped) plus occasional jerks, is
    rendered with bilinear splatting into a `size` x `size` grid, centred on its centre of mass
    and normalised to sum to 1.
    """
    length = rng.uniform(0.25, 1.0) * (size - 3)
    vel = rng.standard_normal(2) * 0.5 + np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    pos = np.zeros(2)
    points = [pos.copy()]
    for _ in range(steps - 1):
        vel += rng.standard_normal(2) * 0.35 - 0.15 * pos / max(length, 1.0)
        if rng.random() < 0.05:
            vel += rng.standard_normal(2) * 1.5  # jerk
        vel /= max(np.linalg.norm(vel), 1e-6)
        pos = pos + vel * length / steps
        points.append(pos.copy())
    pts = np.array(points)
    pts -= pts.mean(axis=0)
    pts += (size - 1) / 2
    pts = np.clip(pts, 0, size - 1.001)
    k = np.zeros((size, size), dtype=np.float64)
    y0, x0 = np.floor(pts[:, 1]).astype(int), np.floor(pts[:, 0]).astype(int)
    fy, fx = pts[:, 1] - y0, pts[:, 0] - x0
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(k, (y0 + dy, x0 + dx), w)
    return (k / k.sum()).astype(np.float32)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with `kernel`, reflecting at the borders (output has input size)."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(img, ((ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)), mode="reflect")
    out = fftconvolve(padded, kernel[:, :, None], mode="valid", axes=(0, 1))
    return out.astype(np.float32)



# --------------------------------------------------------------------------------------------
# Camera-pipeline noise: unprocess sRGB to raw, add sensor noise, process back (Brooks et al.,
# "Unprocessing Images for Learned Raw Denoising", CVPR 2019; CBDNet, Guo et al., CVPR 2019).
# Real photos carry noise that was signal-dependent in the raw domain and then demosaiced
# (spatially correlated), white-balanced, colour-transformed, tone-mapped and JPEG-compressed.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraNoiseConfig:
    """Ranges the camera pipeline samples from; noise parameters on the linear [0, 1] raw scale.

    Shot (gain) and read variance follow the log-linear relation that real sensors show across
    ISO settings (Foi et al. 2008; Brooks et al. 2019): log(read) = read_slope * log(shot) +
    read_offset + N(0, read_spread). `shot` is drawn log-uniformly from `shot_range`.
    """

    shot_range: tuple[float, float] = (5e-6, 2e-3)
    read_slope: float = 2.18
    read_offset: float = 1.2
    read_spread: float = 0.26
    red_gain: tuple[float, float] = (1.9, 2.4)
    blue_gain: tuple[float, float] = (1.5, 1.9)
    ccm_crosstalk: tuple[float, float] = (0.05, 0.6)  # how far the camera's colours are from sRGB
    chroma_smooth_prob: float = 0.9  # in-camera noise reduction blurs colour noise more than luma
    chroma_smooth_sigma: tuple[float, float] = (0.8, 3.0)
    luma_smooth_prob: float = 0.5  # and luma noise a little
    luma_smooth_sigma: tuple[float, float] = (0.3, 0.8)
    # Camera noise reduction leaves low-frequency luma blotches: part of the luma noise variance
    # (`coarse_share`) moved to a coarse scale (Gaussian `coarse_sigma` px). Real high-ISO JPEGs show
    # luma autocorrelation of 0.57-0.78 at 1 px and 0.13-0.39 at 4 px (10-90% over real_noise_dev);
    # fine-scale smoothing alone gives ~0 at 4 px (issue 17; scripts/camera_noise_stats.py).
    coarse_prob: float = 0.0
    coarse_sigma: tuple[float, float] = (1.5, 4.0)
    coarse_share: tuple[float, float] = (0.2, 0.7)
    sharpen_prob: float = 0.3  # in-camera sharpening amplifies the fine-scale noise
    sharpen_amount: tuple[float, float] = (0.2, 1.0)
    jpeg_prob: float = 0.8
    jpeg_quality: tuple[int, int] = (75, 98)

    @classmethod
    def coarse_grain(cls) -> "CameraNoiseConfig":
        """Noise-reduced, coarse-grained camera noise (`--camera-grain coarse`): luma smoothed more
        often and wider, low-frequency luma blotches, chroma smoothed wider, less sharpening. Chosen
        so that the mean luma statistics scripts/camera_noise_stats.py prints for real_noise_dev
        (autocorrelation 0.67 / 0.35 / 0.25 at 1 / 2 / 4 px) lie inside the simulated 10-90% range
        (the chroma correlation, 0.92 / 0.58 at 1 / 4 px, at its upper edge); the defaults leave
        4 px correlations at zero."""
        return cls(luma_smooth_prob=0.9, luma_smooth_sigma=(0.5, 1.5), coarse_prob=0.8, coarse_share=(0.2, 0.8),
                   coarse_sigma=(2.0, 5.0), chroma_smooth_prob=0.95, chroma_smooth_sigma=(1.5, 4.0), sharpen_prob=0.2)


#: --camera-grain choices: the simulated camera's noise texture.
CAMERA_GRAINS = {"fine": CameraNoiseConfig, "coarse": CameraNoiseConfig.coarse_grain}


def srgb_to_linear(img: np.ndarray) -> np.ndarray:
    """Invert the global tone curve (a smoothstep) and the 2.2 gamma of a processed photo."""
    y = np.clip(img, 0.0, 1.0)
    x = 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)
    return np.power(np.maximum(x, 1e-8), 2.2).astype(np.float32)


def linear_to_srgb(img: np.ndarray) -> np.ndarray:
    """2.2 gamma, then the smoothstep tone curve: the inverse of `srgb_to_linear`."""
    x = np.power(np.clip(img, 1e-8, 1.0), 1.0 / 2.2)
    return (3.0 * x**2 - 2.0 * x**3).astype(np.float32)


def random_cam_to_rgb(rng: np.random.Generator, crosstalk: tuple[float, float]) -> np.ndarray:
    """A camera-to-sRGB colour matrix: diagonally dominant, negative off-diagonals, rows summing
    to 1 (white stays white), like the matrices raw converters apply."""
    off = -rng.uniform(0.0, 1.0, (3, 3)) * rng.uniform(*crosstalk) / 2.0
    np.fill_diagonal(off, 0.0)
    return (off + np.diag(1.0 - off.sum(axis=1))).astype(np.float32)


def mosaic_rggb(img: np.ndarray) -> np.ndarray:
    """HxWx3 -> HxW Bayer RGGB raw image (each pixel keeps the one colour its filter passes)."""
    raw = img[..., 1].copy()
    raw[0::2, 0::2] = img[0::2, 0::2, 0]
    raw[1::2, 1::2] = img[1::2, 1::2, 2]
    return raw


_BILINEAR_RB = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)
_BILINEAR_G = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], np.float32)


def demosaic_bilinear(raw: np.ndarray) -> np.ndarray:
    """HxW RGGB raw -> HxWx3 by bilinear interpolation of each colour plane.

    'mirror' borders keep the Bayer phase at the edges, so no colour is borrowed from the wrong
    filter. Bilinear interpolation spreads each pixel's noise over its neighbours: the spatial
    correlation that makes real noise hard for a model trained on white noise.
    """
    h, w = raw.shape
    masks = np.zeros((3, h, w), np.float32)
    masks[0, 0::2, 0::2] = 1
    masks[1, 0::2, 1::2] = masks[1, 1::2, 0::2] = 1
    masks[2, 1::2, 1::2] = 1
    planes = [convolve(raw * m, k, mode="mirror") for m, k in zip(masks, (_BILINEAR_RB, _BILINEAR_G, _BILINEAR_RB))]
    return np.stack(planes, axis=-1).astype(np.float32)


def unsharp_mask(img: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    """In-camera sharpening: img + amount * (img - gaussian blur of img)."""
    return img + amount * (img - blur(img, gaussian_kernel(sigma)))


def smooth_noise(noise: np.ndarray, chroma_sigma: float, luma_sigma: float,
                 coarse_sigma: float = 0.0, coarse_share: float = 0.0) -> np.ndarray:
    """Blur the colour-difference and the luma parts of an HxWx3 noise field by their own
    amounts (0: keep), as in-camera noise reduction does (colour noise much more than luma).

    With `coarse_sigma` > 0, a `coarse_share` of the luma variance moves to that coarser scale
    (the luma blurred by coarse_sigma, rescaled to the luma's own standard deviation), so the
    field keeps its level and gains the long-range correlation of noise-reduced JPEGs."""
    luma = noise.mean(axis=2, keepdims=True)
    chroma = noise - luma
    if chroma_sigma > 0:
        chroma = blur(chroma, gaussian_kernel(chroma_sigma))
    if luma_sigma > 0:
        luma = blur(luma, gaussian_kernel(luma_sigma))
    if coarse_sigma > 0 and coarse_share > 0:
        coarse = blur(luma, gaussian_kernel(coarse_sigma))
        level = float(luma.std())
        mixed = np.sqrt(1.0 - coarse_share) * luma + np.sqrt(coarse_share) * (level / max(float(coarse.std()), 1e-12)) * coarse
        luma = mixed * (level / max(float(mixed.std()), 1e-12))  # the two parts correlate: restore the level
    return luma + chroma


def add_camera_noise(img: np.ndarray, rng: np.random.Generator, cfg: CameraNoiseConfig | None = None) -> np.ndarray:
    """Photograph a clean sRGB image again with a random noisy camera (HxWx3, [0, 1] in and out).

    Unprocess (tone curve, gamma, colour matrix, white balance, Bayer mosaic), add shot and read
    noise, process back (bilinear demosaic, white balance, colour matrix, gamma, tone curve,
    optional sharpening and JPEG). Without noise the round trip returns the input up to clipping,
    so the clean image stays the training target. Odd sides are handled by mirror-padding by one.
    """
    cfg = cfg or CameraNoiseConfig()
    h, w = img.shape[:2]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"camera noise needs an HxWx3 colour image, got shape {img.shape}")
    padded = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="reflect") if (h % 2 or w % 2) else img
    cam_to_rgb = random_cam_to_rgb(rng, cfg.ccm_crosstalk)
    gains = np.array([rng.uniform(*cfg.red_gain), 1.0, rng.uniform(*cfg.blue_gain)], np.float32)
    brightness = np.float32(1.0 / max(rng.normal(0.8, 0.1), 0.5))  # the exposure the camera chose
    log_shot = rng.uniform(np.log(cfg.shot_range[0]), np.log(cfg.shot_range[1]))
    shot = float(np.exp(log_shot))
    read = float(np.exp(cfg.read_slope * log_shot + cfg.read_offset + rng.normal(0.0, cfg.read_spread)))

    linear = srgb_to_linear(padded)
    cam = linear @ np.linalg.inv(cam_to_rgb).T.astype(np.float32)
    raw = mosaic_rggb(np.clip(cam / (gains * brightness), 0.0, 1.0))
    noisy_raw = raw + rng.standard_normal(raw.shape, dtype=np.float32) * np.sqrt(shot * raw + read).astype(np.float32)

    def process(r: np.ndarray) -> np.ndarray:
        rgb = demosaic_bilinear(np.clip(r, 0.0, 1.0)) * (gains * brightness)
        return linear_to_srgb(np.clip(rgb @ cam_to_rgb.T, 0.0, 1.0))

    # Only the noise goes through the camera: a bilinear demosaic of the clean raw would also blur
    # the picture, and a model cannot learn to restore detail the target photo never lost.
    noise = process(noisy_raw) - process(raw)
    chroma_sigma = rng.uniform(*cfg.chroma_smooth_sigma) if rng.random() < cfg.chroma_smooth_prob else 0.0
    luma_sigma = rng.uniform(*cfg.luma_smooth_sigma) if rng.random() < cfg.luma_smooth_prob else 0.0
    coarse_sigma, coarse_share = 0.0, 0.0
    if cfg.coarse_prob > 0 and rng.random() < cfg.coarse_prob:  # no draw when off: old streams stay
        coarse_sigma, coarse_share = rng.uniform(*cfg.coarse_sigma), rng.uniform(*cfg.coarse_share)
    noise = smooth_noise(noise, chroma_sigma, luma_sigma, coarse_sigma, coarse_share)
    if rng.random() < cfg.sharpen_prob:
        noise = unsharp_mask(noise, rng.uniform(*cfg.sharpen_amount))
    out = padded + noise
    if rng.random() < cfg.jpeg_prob:
        out = jpeg_compress(out, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return np.clip(out[:h, :w], 0.0, 1.0).astype(np.float32)

@dataclass(frozen=True)
class DegradationConfig:
    """What to do to a clean patch. Sigmas on the 0-255 scale; probabilities in [0, 1]."""

    task: str = "denoise"  # denoise | deblur | both | pnp-prior (train/pnp_prior.py)
    sigma_min: float = 0.0
    sigma_max: float = 50.0
    poisson_prob: float = 0.3  # fraction of noisy samples using Poisson-Gaussian noise
    shot_max: float = 0.02
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (40, 95)
    motion_prob: float = 0.7  # deblur: camera shake, else Gaussian or defocus blur
    kernel_size: int = 25
    deblur_sigma_max: float = 3.0  # mild noise added after blur for the deblur task
    quantize: bool = True  # clip and round to 8 bits, as real photos arrive
    camera_prob: float = 0.0  # denoise: share of samples noised through the camera pipeline instead
    camera: CameraNoiseConfig = CameraNoiseConfig()
    pnp_sigma: tuple[float, float] = (0.5, 4.0)  # pnp-prior: measurement noise before the data step
    pnp_iterations: tuple[int, int] = (3, 6)  # pnp-prior: HQS schedule lengths drawn

    @classmethod
    def from_dict(cls, values: dict) -> "DegradationConfig":
        """Rebuild from `dataclasses.asdict` output read back from JSON (lists become tuples)."""
        def tuples(d: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        fields = tuples(values)
        if isinstance(fields.get("camera"), dict):
            fields["camera"] = CameraNoiseConfig(**tuples(fields["camera"]))
        return cls(**fields)


def random_blur_kernel(cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Camera shake with probability `motion_prob`, else Gaussian or defocus blur."""
    if rng.random() < cfg.motion_prob:
        return motion_kernel(rng, cfg.kernel_size)
    if rng.random() < 0.5:
        return gaussian_kernel(rng.uniform(0.5, 3.0))
    return defocus_kernel(rng.uniform(1.0, 5.0))


def degrade(img: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply the configured degradation chain (blur, then noise, then JPEG, then 8-bit rounding)."""
    if cfg.task == "pnp-prior":  # first-iteration inputs only: later ones need the prior itself
        from .pnp_prior import pnp_batch

        return pnp_batch(img[None], cfg, rng)[0]
    out = img
    sigma_min, sigma_max = cfg.sigma_min, cfg.sigma_max
    if cfg.task in ("deblur", "both"):
        out = blur(out, random_blur_kernel(cfg, rng))
        if cfg.task == "deblur":  # mild noise only: the sigma range is the denoiser's
            sigma_min, sigma_max = 0.0, cfg.deblur_sigma_max
    if cfg.task == "denoise" and cfg.camera_prob > 0 and out.shape[-1] == 3 and rng.random() < cfg.camera_prob:
        out = add_camera_noise(out, rng, cfg.camera)
    elif sigma_max > 0:
        if cfg.task != "deblur" and rng.random() < cfg.poisson_prob:
            out = add_poisson_gaussian_noise(out, rng.uniform(0, cfg.shot_max), rng.uniform(0, sigma_max / 5), rng)
        else:
            out = add_gaussian_noise(out, rng.uniform(sigma_min, sigma_max), rng)
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        out = jpeg_compress(out, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return quantize_8bit(out) if cfg.quantize else out.astype(np.float32)
