"""`python -m edge_runtime.bench --pnp`: plug-and-play deconvolution time against one denoiser pass.

On one synthetic photo-like image blurred by a 25x25-support motion kernel, in one run: seconds per
megapixel of one denoiser pass (the model through the tiler), and of PnP deconvolution at each
iteration count; the ratio says how many denoiser passes PnP costs. Target (issue 16): the default
schedule costs at most (iterations + 2) passes per megapixel. Best of --repeats runs per row,
rows interleaved round by round so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .deblur import DEFAULT_ITERATIONS, PnPSchedule, pnp_deconvolve
from .kernels import linear_motion_kernel


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pnp", action="store_true",
                   help="only time plug-and-play deconvolution against one denoiser pass (issue 16 target)")
    p.add_argument("--pnp-model", default="deblur_prior", metavar="NAME|PATH",
                   help="the prior for --pnp (default deblur_prior, the prior trained for it)")
    p.add_argument("--pnp-mp", type=float, default=1.0, help="megapixels of the --pnp image (default 1)")
    p.add_argument("--pnp-iterations", default=f"2,4,6,{DEFAULT_ITERATIONS}", metavar="LIST",
                   help=f"iteration counts to time (default 2,4,6,{DEFAULT_ITERATIONS})")


def _image(megapixels: float, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges test image (uint8 RGB, 4:3), blurred and noised like a shaken photo."""
    from .classic import _otf

    h = max(64, int(round((megapixels * 1e6 * 3 / 4) ** 0.5)))
    w = max(64, int(round(h * 4 / 3)))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (f * xx + g * yy)) for f, g in ((3, 1), (1, 4), (5, 2))], axis=-1)
    img[(xx * 17).astype(int) % 2 == 0] *= 0.8  # stripes: edges at every scale
    k = linear_motion_kernel(21, 30)
    H = _otf(k, (h, w))
    blurred = np.fft.irfft2(np.fft.rfft2(img, axes=(0, 1)) * H[..., None], s=(h, w), axes=(0, 1))
    noisy = blurred + rng.normal(0, 2.55 / 255, blurred.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def main(args: argparse.Namespace) -> int:
    """Print the timing table; 0 when the default schedule meets its target, 1 when not, 2 on usage errors."""
    from .api import load_model
    from .errors import EdgeRestoreError

    try:
        counts = sorted({int(v) for v in args.pnp_iterations.split(",") if v.strip()})
        if not counts or counts[0] < 1 or args.pnp_mp <= 0 or args.repeats < 1:
            raise ValueError
    except ValueError:
        print("python -m edge_runtime.bench: error: --pnp-iterations takes integers >= 1, --pnp-mp > 0",
              file=sys.stderr)
        return 2
    try:
        model = load_model(args.pnp_model, threads=args.threads)
    except EdgeRestoreError as exc:
        print(f"python -m edge_runtime.bench: error: {exc}", file=sys.stderr)
        return 2
    image = _image(args.pnp_mp, args.seed)
    kernel = linear_motion_kernel(21, 30)
    mp = image.shape[0] * image.shape[1] / 1e6
    rows = {"one denoiser pass": lambda: model.restore(image)}
    for n in counts:
        rows[f"pnp {n} iterations"] = lambda n=n: pnp_deconvolve(image, kernel, model, 2.57, PnPSchedule(iterations=n))
    best = {name: float("inf") for name in rows}
    for _ in range(args.repeats):
        for name, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    one = best["one denoiser pass"] / mp
    print(f"PnP deconvolution vs one denoiser pass: {image.shape[1]}x{image.shape[0]} ({mp:.2f} MP), "
          f"{args.threads} thread(s), {args.pnp_model}, best of {args.repeats}")
    print(f"  {'row':<24} {'s/MP':>8} {'passes':>8}  target")
    status = 0
    for name, seconds in best.items():
        per_mp = seconds / mp
        line = f"  {name:<24} {per_mp:8.3f} {per_mp / one:8.2f}"
        if name.startswith("pnp"):
            n = int(name.split()[1])
            ok = per_mp / one <= n + 2
            line += f"  <= {n + 2} passes {'PASS' if ok else 'FAIL'}"
            if n == DEFAULT_ITERATIONS and not ok:
                status = 1
        print(line)
    return status
