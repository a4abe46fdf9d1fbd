"""Blur kernels for deconvolution: parametric shapes and the `--kernel` grammar (numpy only).

    from edge_runtime.kernels import parse_kernel_spec, kernel_from_spec
    spec = parse_kernel_spec("motion:15,30")      # linear motion, 15 px long at 30 degrees
    kernel = kernel_from_spec(spec)              # float64, sums to 1, odd sides

Grammar of `--kernel` (:func:`parse_kernel_spec`):

    FILE                 a 2-D .npy array or a .png image (see classic.load_kernel)
    motion:LENGTH,ANGLE  linear motion LENGTH px long (>= 1) at ANGLE degrees, counter-clockwise
                         from the x axis (image rows grow downwards): a conveyor belt's speed x
                         exposure time
    disk:RADIUS          out-of-focus blur, a uniform disc of RADIUS px (> 0)
    gaussian:SIGMA       Gaussian blur of std SIGMA px (> 0)
    estimate             blind: estimated from the image itself (edge_runtime.kernel_estimation)
    motion:estimate      blind linear motion: only length and angle are estimated

Every kernel is centred on pixel ((h - 1) // 2, (w - 1) // 2), as `train.degradations.blur`
and the deconvolution code assume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import KernelError

#: Longest motion / largest disc or Gaussian support accepted from the grammar, in pixels: a kernel
#: this large already costs more than the image detail it could restore on a phone-sized photo.
MAX_KERNEL_EXTENT = 255
#: Supersampling of the parametric kernels' rasterisation (anti-aliased edges and line ends).
SUPERSAMPLE = 8


@dataclass(frozen=True)
class KernelSpec:
    """A parsed `--kernel` value: where the kernel comes from and its parameters."""

    source: str  # file | motion | disk | gaussian | estimate | motion-estimate
    path: str | None = None
    length: float | None = None
    angle: float | None = None
    radius: float | None = None
    sigma: float | None = None

    @property
    def blind(self) -> bool:
        """The kernel is estimated from each image rather than given."""
        return self.source in ("estimate", "motion-estimate")

    def describe(self) -> dict:
        """The manifest's record of where the kernel came from."""
        return {k: v for k, v in {"source": self.source, "path": self.path, "length": self.length, "angle": self.angle,
                                  "radius": self.radius, "sigma": self.sigma}.items() if v is not None}


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = text.split(",")
    if len(parts) != count:
        raise KernelError(f"--kernel {what}: expected {count} comma-separated number(s), got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise KernelError(f"--kernel {what}: {text!r} is not a list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise KernelError(f"--kernel {what}: numbers must be finite, got {text!r}")
    return values


def parse_kernel_spec(text: str) -> KernelSpec:
    """Parse a `--kernel` value (see the module docstring); raises KernelError (one line) when malformed.

    A value with no recognised `NAME:` prefix is a file path (a file may itself be named
    `estimate` only as `./estimate`).
    """
    value = str(text).strip()
    if value == "estimate":
        return KernelSpec("estimate")
    head, sep, rest = value.partition(":")
    if not sep or head not in ("motion", "disk", "gaussian"):
        if not value:
            raise KernelError("--kernel: empty value")
        return KernelSpec("file", path=str(text))
    if head == "motion":
        if rest == "estimate":
            return KernelSpec("motion-estimate")
        length, angle = _numbers(rest, 2, "motion:LENGTH,ANGLE")
        if not 1 <= length <= MAX_KERNEL_EXTENT:
            raise KernelError(f"--kernel motion: LENGTH must be between 1 and {MAX_KERNEL_EXTENT} px, got {length:g}")
        return KernelSpec("motion", length=length, angle=angle)
    (number,) = _numbers(rest, 1, f"{head}:{'RADIUS' if head == 'disk' else 'SIGMA'}")
    limit = MAX_KERNEL_EXTENT / 2 if head == "disk" else MAX_KERNEL_EXTENT / 6
    if not 0 < number <= limit:
        name = "RADIUS" if head == "disk" else "SIGMA"
        raise KernelError(f"--kernel {head}: {name} must be > 0 and at most {limit:g} px, got {number:g}")
    return KernelSpec(head, radius=number) if head == "disk" else KernelSpec(head, sigma=number)


def kernel_from_spec(spec: KernelSpec) -> np.ndarray:
    """The kernel a non-blind spec describes (files are read by classic.load_kernel)."""
    if spec.source == "motion":
        return linear_motion_kernel(spec.length, spec.angle)
    if spec.source == "disk":
        return disk_kernel(spec.radius)
    if spec.source == "gaussian":
        return gaussian_kernel(spec.sigma)
    if spec.source == "file":
        from .classic import load_kernel

        return load_kernel(spec.path)
    raise KernelError(f"--kernel {spec.source}: the kernel is estimated from each image, not built from the spec")


def _normalised(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float64)


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Isotropic Gaussian blur kernel of std `sigma` px (odd size, default 6 sigma + 1), sum 1."""
    size = size or 2 * int(np.ceil(3 * sigma)) + 1
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return _normalised(np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * max(sigma, 1e-6) ** 2)))


def disk_kernel(radius: float) -> np.ndarray:
    """Out-of-focus disc of `radius` px, anti-aliased at the rim by supersampling, sum 1."""
    size = 2 * int(np.ceil(radius)) + 1
    sub = SUPERSAMPLE
    ax = (np.arange(size * sub) + 0.5) / sub - size / 2
    disc = (ax[:, None] ** 2 + ax[None, :] ** 2 <= radius**2).astype(np.float64)
    return _normalised(disc.reshape(size, sub, size, sub).mean(axis=(1, 3)))


def linear_motion_kernel(length: float, angle: float) -> np.ndarray:
    """Uniform linear motion `length` px long at `angle` degrees (counter-clockwise from +x, with
    image rows growing downwards), centred, anti-aliased by supersampling the segment, sum 1.

    The segment [-L/2, L/2] is integrated over the pixels it crosses, so `motion:9,0` is exactly a
    1x9 box filter and a non-integer length gives partial weight to the end pixels.
    """
    theta = math.radians(angle)
    dx, dy = math.cos(theta), -math.sin(theta)  # rows grow downwards
    size = 2 * int(math.ceil(max(abs(dx), abs(dy)) * length / 2 + 0.5)) + 1
    c = (size - 1) // 2
    # box-integrate the segment [-L/2, L/2]: many samples at equal spacing, each counted in the
    # pixel it falls in, so every pixel gets the share of the path that crosses it
    samples = max(1, int(math.ceil(length * SUPERSAMPLE)))
    t = (np.arange(samples) + 0.5) / samples * length - length / 2
    cols = np.floor(c + t * dx + 0.5).astype(int)
    rows = np.floor(c + t * dy + 0.5).astype(int)
    k = np.zeros((size, size))
    np.add.at(k, (rows, cols), 1.0)
    return _normalised(k)
