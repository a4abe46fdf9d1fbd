"""Compare the statistics of real camera noise with the simulated camera's (issue 17).

    python scripts/camera_noise_stats.py --pairs ../shared/datasets/real_noise_dev
    python scripts/camera_noise_stats.py --pairs ../shared/datasets/real_noise_dev --camera-grain coarse

Real: the residual noisy - reference of every `*_real` / `*_mean` pair. Simulated:
train.degradations.add_camera_noise on 256 px crops of CBSD432 photos that are not held out, with
the camera grain's CameraNoiseConfig (train --camera-grain). Rows: mean, 10th and 90th
percentile over images of the residual's standard deviation (0-255 scale: all, luma, chroma),
its autocorrelation at 1, 2 and 4 px (luma; chroma at 1 and 4) and the luma standard deviation in
the darkest and brightest quarter of the picture. Only statistics are compared: the pairs are never trained on.

The alignment rows fit each pair's error (noisy or restored minus reference) per channel as a
constant plus the reference's x and y gradients: to first order, an exposure offset and a
sub-pixel shift (dx, dy px) between the shot and the reference, which no denoiser can remove (it
must keep the brightness and the geometry of its input). They report the fitted shift, the
offset, the share of the error's energy the two explain, and the mean PSNR with and without them.

With --model (repeatable), each model restores the real noisy photos and the error against the
reference is split in two bands, below and above a Gaussian blur of BAND_SIGMA px: RMS (0-255) of
the noisy input's error and of each model's, whole / fine band / coarse band. It shows which part
of the real noise a model removes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_runtime.kernels import gaussian_kernel  # noqa: E402
from train.data import is_held_out, load_image  # noqa: E402
from train.degradations import CAMERA_GRAINS, add_camera_noise, blur, quantize_8bit  # noqa: E402

#: Gaussian blur (px) that splits an error image into a coarse band (the blur) and a fine band (the rest).
BAND_SIGMA = 2.0
COLUMNS = ("std", "luma", "chroma", "acY1", "acY2", "acY4", "acC1", "acC4", "Ydark", "Ybright")


def autocorrelation(plane: np.ndarray, lag: int) -> float:
    """Horizontal autocorrelation of a zero-mean plane at `lag` px."""
    plane = plane - plane.mean()
    return float(np.mean(plane[:, lag:] * plane[:, :-lag]) / max(np.mean(plane * plane), 1e-12))


def residual_stats(residual: np.ndarray, reference: np.ndarray) -> list[float]:
    """The COLUMNS of one HxWx3 residual (0-255 scale) against its reference picture."""
    luma = residual.mean(axis=2)
    chroma = residual - luma[..., None]
    brightness = reference.mean(axis=2)
    dark = brightness < np.percentile(brightness, 25)
    bright = brightness > np.percentile(brightness, 75)
    return [float(residual.std()), float(luma.std()), float(chroma.std()),
            autocorrelation(luma, 1), autocorrelation(luma, 2), autocorrelation(luma, 4),
            autocorrelation(chroma[..., 0], 1), autocorrelation(chroma[..., 0], 4),
            float(luma[dark].std()), float(luma[bright].std())]


def band_rms(error: np.ndarray) -> tuple[float, float, float]:
    """RMS of an HxWx3 error image (0-255): whole, fine band, coarse band (blur of BAND_SIGMA px)."""
    coarse = blur(error.astype(np.float32), gaussian_kernel(BAND_SIGMA)).astype(np.float64)
    rms = lambda x: float(np.sqrt(np.mean(x * x)))  # noqa: E731
    return rms(error), rms(error - coarse), rms(coarse)


def misalignment(error: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """Fit an HxWx3 error (0-255) per channel as offset + dx * d/dx ref + dy * d/dy ref (central
    differences). Returns (dx, dy, offset) averaged over the channels and the fitted HxWx3 component."""
    fitted = np.empty_like(error, dtype=np.float64)
    coefs = []
    for c in range(error.shape[2]):
        gy, gx = np.gradient(reference[..., c].astype(np.float64))
        design = np.stack([gx.ravel() - gx.mean(), gy.ravel() - gy.mean()], axis=1)
        e = error[..., c].astype(np.float64).ravel()
        # ridge of one level^2 per pixel: a reference with (almost) no gradient variation (flat, a
        # ramp) says nothing about a shift, and the fit should say 0 rather than fit the noise
        shift = np.linalg.solve(design.T @ design + e.size * np.eye(2), design.T @ (e - e.mean()))
        fitted[..., c] = (design @ shift + e.mean()).reshape(gx.shape)
        coefs.append([shift[0], shift[1], e.mean() - shift[0] * gx.mean() - shift[1] * gy.mean()])
    dx, dy, offset = np.mean(coefs, axis=0)
    return float(dx), float(dy), float(offset), fitted


def psnr_255(error: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean(error * error), 1e-12)))


def summary(name: str, rows: list[list[float]]) -> str:
    r = np.array(rows)
    lines = [f"{name:18s} " + " ".join(f"{c:>7s}" for c in COLUMNS)]
    for label, values in (("mean", r.mean(0)), ("p10", np.percentile(r, 10, 0)), ("p90", np.percentile(r, 90, 0))):
        lines.append(f"  {label:16s} " + " ".join(f"{v:7.3f}" for v in values))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    ap.add_argument("--pairs", type=Path, default=data / "real_noise_dev", help="folder of *_real / *_mean pairs")
    ap.add_argument("--clean", type=Path, default=data / "CBSD432", help="clean photos for the simulation")
    ap.add_argument("--images", type=int, default=60, help="simulated crops")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append", default=[], metavar="PATH",
                    help="also restore the real photos with this model (.tflite/.onnx or a shipped name; repeatable) "
                         "and split its error in bands")
    ap.add_argument("--camera-grain", choices=sorted(CAMERA_GRAINS), default="fine",
                    help="the simulated camera, as `python -m train --camera-grain` (default %(default)s)")
    args = ap.parse_args(argv)
    if not args.pairs.is_dir() or not args.clean.is_dir():
        print(f"error: {args.pairs} or {args.clean} is not a folder", file=sys.stderr)
        return 2
    from edge_runtime.api import load_model

    models = {name: load_model(name) for name in args.model}
    real, bands = [], {"noisy input": [], **{name: [] for name in models}}
    aligned = {name: [] for name in bands}  # per pair: dx, dy, offset, explained share, PSNR, PSNR without the fit
    for noisy_path in sorted(p for p in args.pairs.iterdir() if p.stem.endswith("_real")):
        ref_path = noisy_path.with_name(noisy_path.stem[: -len("_real")] + "_mean" + noisy_path.suffix)
        noisy, ref = (load_image(p).astype(np.float64) * 255 for p in (noisy_path, ref_path))
        real.append(residual_stats(noisy - ref, ref))
        errors = {"noisy input": noisy - ref}
        for name, model in models.items():
            errors[name] = model.restore(np.rint(noisy).astype(np.uint8)).astype(np.float64) - ref
        for name, error in errors.items():
            bands[name].append(band_rms(error))
            dx, dy, offset, fitted = misalignment(error, ref)
            rest = error - fitted
            explained = 1.0 - float(np.mean(rest * rest)) / max(float(np.mean(error * error)), 1e-12)
            aligned[name].append([dx, dy, offset, explained, psnr_255(error), psnr_255(rest)])
    print(summary(f"real ({len(real)} pairs)", real))
    print("alignment of the real pairs (mean over images): |dx| |dy| px, |offset| (0-255), share of the error "
          "energy they explain, PSNR, PSNR without them")
    for name, rows in aligned.items():
        r = np.abs(np.array(rows))
        print(f"  {name:28s} {r[:, 0].mean():5.2f} {r[:, 1].mean():5.2f} {r[:, 2].mean():6.2f} "
              f"{100 * r[:, 3].mean():5.1f}% {r[:, 4].mean():6.2f} {r[:, 5].mean():6.2f}")
    if models:
        print(f"error RMS (0-255) on the real pairs, mean over images: whole, fine band, coarse band (blur {BAND_SIGMA:g} px)")
        for name, rows in bands.items():
            whole, fine, coarse = np.mean(rows, axis=0)
            print(f"  {name:28s} {whole:6.3f} {fine:6.3f} {coarse:6.3f}")
    cfg = CAMERA_GRAINS[args.camera_grain]()
    rng = np.random.default_rng(args.seed)
    paths = [p for p in sorted(args.clean.iterdir()) if p.is_file() and not is_held_out(p)][: args.images]
    simulated = []
    for p in paths:
        clean = load_image(p)[: args.crop, : args.crop]
        noisy = quantize_8bit(add_camera_noise(clean, rng, cfg))
        simulated.append(residual_stats((noisy.astype(np.float64) - clean) * 255, clean * 255.0))
    print(summary(f"{args.camera_grain} ({len(simulated)})", simulated))
    return 0


if __name__ == "__main__":
    sys.exit(main())
