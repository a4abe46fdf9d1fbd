"""The training loop: float training and QAT fine-tuning, resumable, reading top to bottom."""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_runtime.metrics import psnr

from .checkpoint import load_checkpoint, load_restorer, load_weights, save_checkpoint
from .data import PatchConfig, PatchSampler, is_held_out, list_images, load_images, validation_pairs
from .degradations import DegradationConfig
from .losses import restoration_loss
from .model import Restorer, preset
from .quant import freeze_ranges, set_quant_mode

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a training run needs; stored in its checkpoints."""

    out_dir: str = "runs/denoise"
    data: list[str] = field(default_factory=list)  # folders of clean photos (empty: dead leaves only)
    val_dirs: list[str] = field(default_factory=list)  # extra validation folders (e.g. Set14)
    preset: str = "small"
    steps: int = 20000
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup: int = 500
    schedule: str = "cosine"  # cosine | onecycle | constant
    weight_decay: float = 1e-4
    ema: float = 0.999
    freq_loss: float = 0.0
    grad_clip: float = 1.0
    threads: int = 0  # 0: torch default (all cores)
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 250
    val_max_images: int = 24
    resume: bool = True
    init_from: str = ""  # checkpoint to start from (required for QAT)
    qat: bool = False
    calib_batches: int = 32
    patch: PatchConfig = field(default_factory=PatchConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr (onecycle: 30% warm-up)."""
    if cfg.schedule == "constant":
        return cfg.lr
    warmup = int(0.3 * cfg.steps) if cfg.schedule == "onecycle" else cfg.warmup
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, cfg.steps - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


@torch.no_grad()
def evaluate(model: Restorer, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> float:
    """Mean PSNR of the model on fixed (name, degraded, clean) pairs; output clipped as saved."""
    model.eval()
    scores = []
    for _, degraded, clean in pairs:
        out = model(torch.from_numpy(degraded.transpose(2, 0, 1)[None].copy()))
        restored = out[0].numpy().transpose(1, 2, 0).clip(0, 1)
        scores.append(psnr(np.round(restored * 255) / 255, clean))
    return float(np.mean(scores))


def calibrate(model: Restorer, sampler: PatchSampler, batches: int) -> None:
    """Observe activation ranges on training batches, freeze them, switch fake-quant on."""
    set_quant_mode(model, "observe")
    with torch.no_grad():
        for i in range(batches):
            model(torch.from_numpy(sampler.batch(10_000_000 + i)[0]))
    freeze_ranges(model)
    set_quant_mode(model, "quant")


def validation_degradation(train_deg: DegradationConfig) -> DegradationConfig:
    """Denoisers are tracked at the standard AWGN sigma 25; deblurrers on their training mix."""
    if train_deg.task == "denoise":
        return replace(train_deg, sigma_min=25.0, sigma_max=25.0, poisson_prob=0.0, jpeg_prob=0.0)
    return train_deg


def _split_data(cfg: TrainConfig) -> tuple[list[Path], dict[str, list[Path]]]:
    train_paths: list[Path] = []
    val_sets: dict[str, list[Path]] = {}
    held: list[Path] = []
    for folder in cfg.data:
        for p in list_images(folder):
            (held if is_held_out(p) else train_paths).append(p)
    if held:
        val_sets["held-out"] = held[: cfg.val_max_images]
    for folder in cfg.val_dirs:
        val_sets[Path(folder).name] = list_images(folder)[: cfg.val_max_images]
    return train_paths, val_sets


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.patch.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if cfg.init_from:
        model, init_ckpt = load_restorer(cfg.init_from)
        set_quant_mode(model, "off")
        model_cfg = model.cfg
    else:
        if cfg.qat:
            raise ValueError("QAT fine-tunes a trained float model: pass init_from (--init-from CKPT)")
        model = Restorer(preset(cfg.preset))
        model_cfg = model.cfg

    train_paths, val_sets = _split_data(cfg)
    images = load_images(train_paths, model_cfg.channels)
    if train_paths and not images:  # never fall back to dead leaves silently
        raise ValueError(f"none of the {len(train_paths)} training images in {', '.join(cfg.data)} could be read")
    log.info("training on %d images, validating on %s", len(images), {k: len(v) for k, v in val_sets.items()})
    sampler = PatchSampler(images, cfg.degradation, cfg.patch, model_cfg.channels)
    val = {name: validation_pairs(paths, validation_degradation(cfg.degradation), model_cfg.size_multiple, channels=model_cfg.channels)
           for name, paths in val_sets.items()}
    val = {name: pairs for name, pairs in val.items() if pairs}  # a set whose every image was unreadable
    if not val:  # no photos at all: validate on fixed dead-leaves patches
        from .data import dead_leaves
        from .degradations import degrade
        rng = np.random.default_rng(99)
        clean = [dead_leaves(128, rng, model_cfg.channels) for _ in range(4)]
        val = {"dead-leaves": [(f"dl{i}", degrade(c, cfg.degradation, rng), c) for i, c in enumerate(clean)]}

    if cfg.qat:
        calibrate(model, sampler, cfg.calib_batches)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(model).requires_grad_(False)
    start, best = 0, -math.inf
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        load_weights(model, ckpt["model"])
        load_weights(ema, ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        start, best = int(ckpt["step"]), float(ckpt.get("best", -math.inf))
        log.info("resumed from %s at step %d", last_path, start)

    def payload(step: int) -> dict:
        return {"model_config": model_cfg.to_dict(), "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "best": best, "qat": cfg.qat,
                "train_config": json.loads(json.dumps(asdict(cfg)))}

    metrics_file = (out / "metrics.jsonl").open("a")
    model.train()
    t0, seen = time.time(), 0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="qat" if cfg.qat else "train",
               dynamic_ncols=True, mininterval=5)
    for step in bar:
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        degraded, clean = (torch.from_numpy(a) for a in sampler.batch(step))
        loss = restoration_loss(model(degraded), clean, cfg.freq_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))
            for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
                e.lerp_(p, 1 - decay) if e.is_floating_point() else e.copy_(p)
        seen += degraded.numel() // model_cfg.channels
        done = step + 1
        if done % cfg.log_every == 0:
            rate = seen / (time.time() - t0) / 1e6
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.1e}", mpix_s=f"{rate:.2f}")
            metrics_file.write(json.dumps({"step": done, "loss": loss.item(), "lr": lr, "mpix_per_s": rate}) + "\n")
        if done % cfg.val_every == 0 or done == cfg.steps:
            scores = {name: evaluate(ema, pairs) for name, pairs in val.items()}
            ema.train()
            metrics_file.write(json.dumps({"step": done, "val_psnr": scores}) + "\n")
            tqdm.write(f"step {done}: val PSNR " + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
            score = next(iter(scores.values()))
            if score > best:
                best = score
                save_checkpoint(best_path, payload(done))
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            save_checkpoint(last_path, payload(done))
        metrics_file.flush()
    metrics_file.close()
    if not best_path.exists():
        save_checkpoint(best_path, payload(cfg.steps))
    return best_path
