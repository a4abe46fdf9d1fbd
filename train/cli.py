"""`edge-restore-train` / `python -m train`: train a restorer, fine-tune it with QAT, or list presets.

Examples:
  python -m train --summary
  python -m train --task denoise --data ../shared/datasets/CBSD432 --val ../shared/datasets/Set14 \\
      --preset small --steps 20000 --out runs/denoise
  python -m train --qat --init-from runs/denoise/best.pt --steps 1000 --lr 1e-4 --calib-percentile 99.99 \\
      --out runs/denoise-qat --data ../shared/datasets/CBSD432
  python -m train --preset minimalistic --warm-start runs/denoise/best.pt --steps 3000 --lr 5e-4 \\
      --out runs/minimal --data ../shared/datasets/CBSD432
  python -m train --preset fast --warm-start runs/denoise/best.pt --steps 10000 --patch 128 --batch 10 \\
      --lr 1e-3 --warmup 200 --out runs/denoise-fast --data ../shared/datasets/CBSD432
  python -m train --task deblur --init-from runs/denoise/best.pt --patch 96 --freq-loss 0.05 --steps 2000 \\
      --lr 1e-3 --out runs/deblur --data ../shared/datasets/CBSD432
  python -m train --gan --init-from models/denoise_qat.pt --steps 2500 --lr 1e-4 --d-lr 1e-4 --adv-weight 0.01 \\
      --batch 16 --patch 128 --device cuda --out runs/denoise-gan --data ../shared/datasets/CBSD432
  OMP_NUM_THREADS=1 torchrun --nproc_per_node=2 -m train --preset tiny --steps 2000 --out runs/ddp

Data-parallel: under torchrun (WORLD_SIZE > 1) every process trains a DistributedDataParallel copy
(gloo on CPU, NCCL with --device cuda); rank r trains on the batch a single process would draw at
step * WORLD_SIZE + r, so --batch is per process and the effective batch is WORLD_SIZE * --batch.
Rank 0 alone keeps the EMA, validates, writes checkpoints, metrics.jsonl/metrics.csv and the bar.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace

from edge_runtime.cli import int_at_least
from edge_runtime.contract import TASKS

from .data import PatchConfig
from .degradations import CAMERA_GRAINS, DegradationConfig
from .gan import add_gan_arguments, gan_config_from_args, train_gan
from .model import PRESETS, summary_table
from .train import TrainConfig, train


def _share(text: str) -> float:
    """argparse type: a share of samples in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    d, pd, dd = TrainConfig(), PatchConfig(), DegradationConfig()
    p = argparse.ArgumentParser(prog="edge-restore-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", action="store_true", help="print parameters and MACs/pixel of every preset and exit")
    p.add_argument("--task", choices=TASKS, default=dd.task,
                   help="what degradation to learn to undo; pnp-prior: the data-step output of plug-and-play "
                        "deconvolution, made with the model being trained as the prior (train/pnp_prior.py)")
    p.add_argument("--data", action="append", default=[], metavar="DIR",
                   help="folder of clean photos (recursive; repeatable). None: procedural dead leaves only")
    p.add_argument("--val", action="append", default=[], metavar="DIR", help="extra validation folder (e.g. Set14)")
    p.add_argument("--out", default=d.out_dir,
                   help="run folder: last.pt, best.pt, metrics.jsonl, metrics.csv (default %(default)s)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=d.preset, help="architecture (default %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimiser steps (default %(default)s)")
    p.add_argument("--patch", type=int, default=pd.patch, help="training patch side in px (default %(default)s)")
    p.add_argument("--batch", type=int, default=pd.batch,
                   help="patches per step and per process under torchrun (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warm-up steps (default %(default)s)")
    p.add_argument("--schedule", choices=("cosine", "onecycle", "constant"), default=d.schedule)
    p.add_argument("--ema", type=float, default=d.ema, help="EMA decay of the weights (default %(default)s)")
    p.add_argument("--freq-loss", type=float, default=d.freq_loss, help="weight of the FFT loss (try 0.05 for deblur)")
    p.add_argument("--sigma", type=float, nargs=2, default=(dd.sigma_min, dd.sigma_max), metavar=("MIN", "MAX"),
                   help="Gaussian noise sigma range on the 0-255 scale (default %(default)s)")
    p.add_argument("--poisson-prob", type=float, default=dd.poisson_prob, help="share of Poisson-Gaussian noise samples")
    p.add_argument("--jpeg-prob", type=float, default=dd.jpeg_prob, help="share of samples JPEG-compressed after noise")
    p.add_argument("--dead-leaves", type=float, default=pd.dead_leaves_prob, help="share of dead-leaves patches")
    p.add_argument("--no-quantize-inputs", action="store_true", help="keep degraded inputs in float (default: 8-bit rounded)")
    p.add_argument("--camera-noise", type=_share, default=dd.camera_prob, metavar="P",
                   help="share of samples noised through a simulated camera pipeline (raw shot/read noise, "
                        "demosaic, colour, tone curve, JPEG) instead of sRGB noise: for real photos (default %(default)s)")
    p.add_argument("--camera-grain", choices=sorted(CAMERA_GRAINS), default="fine",
                   help="texture of the simulated camera's noise: fine (bilinear demosaic, light noise reduction; "
                        "the shipped denoise_real recipe) or coarse (heavier in-camera noise reduction: smoothed, "
                        "blotchy luma and chroma, as high-ISO JPEGs show) (default %(default)s)")
    p.add_argument("--loader-workers", type=int_at_least(0), default=d.loader_workers, metavar="N",
                   help="processes that degrade batches ahead of the model; worth it on a GPU, where the numpy "
                        "degradations bound the step rate (default %(default)s: in the training loop)")
    p.add_argument("--residual-step", type=float, default=d.residual_step, metavar="LEVELS",
                   help="int8 step of the model's predicted residual in 8-bit levels (architecture default 2: "
                        "residuals up to +-1; 1 rounds small residuals, as real camera noise has, half as "
                        "coarsely); with --init-from it changes the checkpoint's architecture (default: keep)")
    p.add_argument("--seed", type=int, default=pd.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (0: all cores)")
    p.add_argument("--log-every", type=int_at_least(1), default=d.log_every,
                   help="steps between loss/lr/throughput lines in metrics.jsonl and metrics.csv (default %(default)s)")
    p.add_argument("--val-every", type=int, default=d.val_every,
                   help="steps between validations of the EMA weights (default %(default)s)")
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every,
                   help="steps between writes of OUT/last.pt (default %(default)s)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    p.add_argument("--init-from", default="", metavar="CKPT", help="start from this checkpoint's weights")
    p.add_argument("--warm-start", default="", metavar="CKPT",
                   help="initialise the --preset architecture with this checkpoint's weights: every parameter the two "
                        "share by name is copied (and must match in shape), new blocks start as identities; e.g. the "
                        "small denoiser into --preset minimalistic (ReLU) or --preset fast (no full-resolution blocks, "
                        "a fourth level); a fresh schedule, unlike --init-from which keeps the checkpoint's architecture")
    p.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning (needs --init-from)")
    p.add_argument("--calib-batches", type=int, default=d.calib_batches, help="batches observed before ranges freeze")
    p.add_argument("--distill", type=float, default=d.distill, metavar="W",
                   help="QAT: add W x Charbonnier(int8 output, output of the float model QAT starts from) to the loss; "
                        "costs one more forward pass per step; e.g. 1.0 (default 0: off)")
    p.add_argument("--calib-percentile", type=float, default=d.calib_percentile, metavar="P",
                   help="QAT: each activation's int8 range covers the central P%% of its values on the calibration "
                        "batches (default %(default)s: min to max); 99.99 gives a finer step and helps at low noise")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=d.device,
                   help="where to train: cpu, cuda (each torchrun process on its LOCAL_RANK GPU) or auto "
                        "(cuda when available) (default %(default)s)")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bfloat16 autocast on CPU (allowed, but usually slower than float32 "
                        "without native bfloat16), float16 autocast with a GradScaler on CUDA; the loss, the "
                        "optimizer, the EMA and validation stay float32. Not with --qat")
    p.add_argument("--grad-checkpoint", action="store_true",
                   help="gradient checkpointing over the encoder, bottleneck and decoder stages: recomputes them "
                        "in the backward pass instead of storing activations (less memory, ~1 extra forward, "
                        "same result)")
    p.add_argument("--tile-size", type=int_at_least(1), default=d.tile_size,
                   help="tile side recorded in the model contract stored in each checkpoint; a multiple of the "
                        "preset's size multiple (default %(default)s)")
    add_gan_arguments(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    degradation = replace(DegradationConfig(), task=args.task, sigma_min=args.sigma[0], sigma_max=args.sigma[1],
                          poisson_prob=args.poisson_prob, jpeg_prob=args.jpeg_prob, camera_prob=args.camera_noise,
                          camera=CAMERA_GRAINS[args.camera_grain](), quantize=not args.no_quantize_inputs)
    patch = PatchConfig(patch=args.patch, batch=args.batch, dead_leaves_prob=args.dead_leaves, seed=args.seed)
    return TrainConfig(out_dir=args.out, data=args.data, val_dirs=args.val, preset=args.preset, steps=args.steps,
                       lr=args.lr, warmup=args.warmup, schedule=args.schedule, ema=args.ema, freq_loss=args.freq_loss,
                       threads=args.threads, log_every=args.log_every, val_every=args.val_every,
                       ckpt_every=args.ckpt_every, resume=not args.no_resume, init_from=args.init_from,
                       warm_start=args.warm_start, qat=args.qat,
                       calib_batches=args.calib_batches,
                       calib_percentile=args.calib_percentile, distill=args.distill, device=args.device, amp=args.amp,
                       grad_checkpoint=args.grad_checkpoint, tile_size=args.tile_size, loader_workers=args.loader_workers, residual_step=args.residual_step, patch=patch,
                       degradation=degradation)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.summary:
        print(summary_table())
        return 0
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    tag = f"[rank {rank}] " if world > 1 else ""  # torchrun: every process logs; metrics come from rank 0
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s {tag}%(message)s")
    try:
        cfg = config_from_args(args)
        best = train_gan(gan_config_from_args(args, cfg)) if args.gan else train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"edge-restore-train: error: {tag}{exc}", file=sys.stderr)
        return 1
    if rank == 0:
        print(f"best checkpoint: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
