"""Sweep the plug-and-play deconvolution schedule (iterations, weight, start sigma, returned iterate).

Synthetic blur of training photos (CBSD432 minus its held-out slice, so the evaluation sets stay
untouched) with the Levin et al. and 12-kernel sets plus 1% Gaussian noise, 8-bit rounded; every
configuration restores the same inputs; mean PSNR per configuration, Wiener with the true kernel as
the reference row. docs/deblur.md records a run and the rule it chose.

    python scripts/pnp_schedule_sweep.py --model models/denoise_int8.tflite --images 6 --crop 192
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_runtime import load_model  # noqa: E402
from edge_runtime.classic import wiener_deconvolve  # noqa: E402
from edge_runtime.deblur import PnPSchedule, pnp_deconvolve_block  # noqa: E402
from edge_runtime.metrics import psnr  # noqa: E402
from train.data import is_held_out, list_images, load_image  # noqa: E402
from train.degradations import add_gaussian_noise, blur, quantize_8bit  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"


def blurred_set(folder: Path, kernel_dirs: list[Path], count: int, crop: int, sigma: float,
                scene: bool = False) -> list[tuple]:
    """(clean, blurred, kernel) triples: training photos (held-out slice excluded), kernels in turn;
    `scene`: the crop is blurred from the photo around it (a 'valid' convolution, as a camera sees
    a scene that goes on past the frame) instead of from its own reflection (train.degradations.blur)."""
    photos = [p for p in list_images(folder) if not is_held_out(p)]
    step = max(1, len(photos) // count)
    kernels = [np.load(k) for d in kernel_dirs for k in sorted(d.glob("*.npy"))]
    rng = np.random.default_rng(0)
    triples = []
    for i, path in enumerate(photos[::step][:count]):
        img = load_image(path)
        y0, x0 = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
        clean = img[y0 : y0 + crop, x0 : x0 + crop]
        for j in range(i % 4, len(kernels), max(1, len(kernels) // 5)):  # a spread of kernels per photo
            k = kernels[j].astype(np.float32) / kernels[j].sum()
            seen = scene_blur(img, k, y0, x0, crop) if scene else blur(clean, k)
            triples.append((clean, quantize_8bit(add_gaussian_noise(seen, sigma, rng)), k))
    return triples


def scene_blur(img: np.ndarray, k: np.ndarray, y0: int, x0: int, crop: int) -> np.ndarray:
    """The crop x crop window at (y0, x0) of `img` blurred by `k` from the pixels around it (the
    kernel's centre as train.degradations.blur places it; the photo's edge reflected where the
    window comes within a kernel of it)."""
    from scipy.signal import fftconvolve

    kh, kw = k.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(img, ((kh, kh), (kw, kw), (0, 0)), mode="reflect")
    window = padded[kh + y0 - top : kh + y0 + crop + kh - 1 - top, kw + x0 - left : kw + x0 + crop + kw - 1 - left]
    return np.stack([fftconvolve(window[..., c], k, mode="valid") for c in range(img.shape[2])], -1).astype(np.float32)


def torch_denoiser(path: str, threads: int):
    """A training checkpoint as the prior (float torch, output on the 8-bit grid as the board's is,
    through the same wrapper that pnp-prior training uses): for judging a prior while it trains."""
    import torch

    from train.checkpoint import load_restorer
    from train.quant import set_quant_mode
    from train.train import model_prior

    torch.set_num_threads(threads)
    model, _ = load_restorer(path)
    set_quant_mode(model, "off")
    prior = model_prior(model)
    return lambda img: prior(np.asarray(img, np.float32)[None])[0]


def to_8bit(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255) / 255


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/denoise_int8.tflite",
                   help="denoiser (.tflite, .onnx, or a training checkpoint .pt run in float torch)")
    p.add_argument("--data", default=str(SHARED / "CBSD432"), help="clean photos (held-out slice skipped)")
    p.add_argument("--images", type=int, default=6, help="photos (each with ~5 kernels)")
    p.add_argument("--crop", type=int, default=192, help="centre crop side in px")
    p.add_argument("--sigma", type=float, default=2.55, help="noise std on the 0-255 scale")
    p.add_argument("--iterations", default="3,4,5,6,8", help="comma list")
    p.add_argument("--weights", default="1", help="comma list of lambda")
    p.add_argument("--start-sigmas", default="25,40", help="comma list, 0-255 scale")
    p.add_argument("--relax-sigmas", default="0,5", help="comma list (0: off), 0-255 scale")
    p.add_argument("--outputs", default="data", help="comma list: data, prior")
    p.add_argument("--self-ensembles", default="1",
                   help="comma list: 1 (the default: prior step i sees transform i mod 8), 0 (off; the sweeps before "
                        "self-ensemble existed)")
    p.add_argument("--boundary-passes", default="2",
                   help="comma list: Wiener passes that estimate the blur past the borders (PnPSchedule.boundary_passes; "
                        "2, the default; 0: the reflected, tapered margin alone, as the sweeps before them)")
    p.add_argument("--scene", action="store_true",
                   help="blur each crop from the photo around it (the scene goes on past the frame) instead of "
                        "from its own reflection")
    p.add_argument("--kernel-sets", default="levin09_npy,kernels12_npy",
                   help="comma list of folders under blur_kernels (default both)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    kernel_dirs = [SHARED / "blur_kernels" / k.strip() for k in args.kernel_sets.split(",") if k.strip()]
    missing = [str(d) for d in [Path(args.data), *kernel_dirs] if not d.is_dir()]
    if missing:
        print(f"pnp_schedule_sweep: missing data folder(s): {', '.join(missing)}", file=sys.stderr)
        return 66
    triples = blurred_set(Path(args.data), kernel_dirs, args.images, args.crop, args.sigma, args.scene)
    restore = (torch_denoiser(args.model, args.threads) if args.model.endswith(".pt")
               else load_model(args.model, threads=args.threads).restore)
    sn = float(np.hypot(args.sigma, 1 / np.sqrt(12)))  # the 8-bit rounding adds to the noise
    print(f"{len(triples)} blurred crops of {args.crop} px, sigma {args.sigma}"
          f"{', blurred from the scene around them' if args.scene else ''}; model {args.model}")
    wiener = np.mean([psnr(to_8bit(wiener_deconvolve(y, k, sigma=sn)), c) for c, y, k in triples])
    blurred = np.mean([psnr(y, c) for c, y, _ in triples])
    print(f"{'blurred input':<50} {blurred:6.2f} dB")
    print(f"{'wiener (true kernel, true sigma)':<50} {wiener:6.2f} dB")
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    grid = itertools.product([int(v) for v in args.iterations.split(",")], floats(args.weights),
                             floats(args.start_sigmas), floats(args.relax_sigmas), args.outputs.split(","),
                             [bool(int(v)) for v in args.self_ensembles.split(",")],
                             [int(v) for v in args.boundary_passes.split(",")])
    for iters, weight, start, relax, output, ensemble, passes in grid:
        schedule = PnPSchedule(iterations=iters, weight=weight, start_sigma=start, relax_sigma=relax,
                               output=output, self_ensemble=ensemble, boundary_passes=passes).check()
        t0 = time.perf_counter()
        score = np.mean([psnr(to_8bit(pnp_deconvolve_block(y, k, restore, sn, schedule)), c)
                         for c, y, k in triples])
        label = (f"pnp it={iters} lambda={weight:g} start={start:g} relax={relax:g} out={output}"
                 + (" ensemble" if ensemble else "") + (f" boundary={passes}" if passes else ""))
        print(f"{label:<50} {score:6.2f} dB  ({score - wiener:+.2f} vs wiener, {time.perf_counter() - t0:.1f} s)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
