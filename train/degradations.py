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
from scipy.signal import fftconvolve

from edge_runtime.contract import PIXEL_MAX


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


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Normalised isotropic Gaussian blur kernel (odd size, default 6 sigma + 1)."""
    size = size or 2 * int(np.ceil(3 * sigma)) + 1
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * max(sigma, 1e-6) ** 2))
    return (k / k.sum()).astype(np.float32)


def defocus_kernel(radius: float) -> np.ndarray:
    """Normalised disc (out-of-focus) kernel, anti-aliased at the rim by 4x supersampling."""
    size = 2 * int(np.ceil(radius)) + 1
    sub = 4
    ax = (np.arange(size * sub) + 0.5) / sub - size / 2
    disc = (ax[:, None] ** 2 + ax[None, :] ** 2 <= radius**2).astype(np.float64)
    k = disc.reshape(size, sub, size, sub).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


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


@dataclass(frozen=True)
class DegradationConfig:
    """What to do to a clean patch. Sigmas on the 0-255 scale; probabilities in [0, 1]."""

    task: str = "denoise"  # denoise | deblur | both
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


def random_blur_kernel(cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Camera shake with probability `motion_prob`, else Gaussian or defocus blur."""
    if rng.random() < cfg.motion_prob:
        return motion_kernel(rng, cfg.kernel_size)
    if rng.random() < 0.5:
        return gaussian_kernel(rng.uniform(0.5, 3.0))
    return defocus_kernel(rng.uniform(1.0, 5.0))


def degrade(img: np.ndarray, cfg: DegradationConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply the configured degradation chain (blur, then noise, then JPEG, then 8-bit rounding)."""
    out = img
    sigma_min, sigma_max = cfg.sigma_min, cfg.sigma_max
    if cfg.task in ("deblur", "both"):
        out = blur(out, random_blur_kernel(cfg, rng))
        if cfg.task == "deblur":  # mild noise only: the sigma range is the denoiser's
            sigma_min, sigma_max = 0.0, cfg.deblur_sigma_max
    if sigma_max > 0:
        if cfg.task != "deblur" and rng.random() < cfg.poisson_prob:
            out = add_poisson_gaussian_noise(out, rng.uniform(0, cfg.shot_max), rng.uniform(0, sigma_max / 5), rng)
        else:
            out = add_gaussian_noise(out, rng.uniform(sigma_min, sigma_max), rng)
    if cfg.jpeg_prob > 0 and rng.random() < cfg.jpeg_prob:
        out = jpeg_compress(out, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return quantize_8bit(out) if cfg.quantize else out.astype(np.float32)
