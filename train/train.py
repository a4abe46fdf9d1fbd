"""The training loop: float training and QAT fine-tuning, resumable, reading top to bottom.

Runs as one process or data-parallel under torchrun (`torchrun --nproc_per_node=N -m train ...`):
with WORLD_SIZE > 1 every rank trains a DistributedDataParallel copy of the model (gloo on CPU,
NCCL on CUDA) on its own batches (see `batch_index`); rank 0 alone keeps the EMA, validates,
writes checkpoints and logs, and shows the progress bar.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from edge_runtime.contract import DEFAULT_TILE, PIXEL_MAX, TORCH_LAYOUT, ModelContract
from edge_runtime.metrics import psnr

from .checkpoint import load_checkpoint, load_restorer, load_weights, save_checkpoint, warm_start_weights
from .data import BatchPrefetcher, PatchConfig, PatchSampler, is_held_out, list_images, load_images, validation_pairs
from .degradations import DegradationConfig
from .losses import charbonnier, restoration_loss
from .model import PRESETS, Restorer, RestorerConfig, preset
from .pnp_prior import PNP_VAL_IMAGES, pnp_validation_psnr
from .quant import freeze_ranges, set_observer_percentile, set_quant_mode

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
    warm_start: str = ""  # checkpoint whose shared weights initialise the `preset` architecture
    qat: bool = False
    calib_batches: int = 32
    calib_percentile: float = 100.0  # QAT: % of each activation's values its int8 range covers (100: min/max)
    distill: float = 0.0  # QAT: weight of the pull towards the float model's own output (0: off)
    device: str = "cpu"  # cpu | cuda | auto
    amp: bool = False  # mixed precision: bfloat16 autocast on CPU, float16 autocast + GradScaler on CUDA
    grad_checkpoint: bool = False  # recompute encoder/decoder stages in backward (less memory)
    tile_size: int = DEFAULT_TILE  # tile side recorded in the checkpoints' model contract
    loader_workers: int = 0  # processes that degrade batches ahead of the model (0: in the loop)
    residual_step: float = 0.0  # > 0: set the architecture's residual int8 step (levels) for this run
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


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """The process group already set up, else torchrun's RANK / WORLD_SIZE / LOCAL_RANK variables."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Distributed(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                       int(os.environ.get("LOCAL_RANK", "0")))


def batch_index(step: int, ddp: Distributed) -> int:
    """Key of the batch that rank r of W trains on at `step`: sampler.batch(step * W + r).

    One process (W = 1) sees batch(step), as before; W ranks together see the batches a single
    process would see at steps step*W .. step*W + W-1, so every rank draws different patches, the
    run is reproducible, and a resumed run (with the same W) sees exactly the batches an
    uninterrupted one would. DDP averages the ranks' gradients: the effective batch is W * batch.
    """
    return step * ddp.world_size + ddp.rank


def resolve_device(name: str, ddp: Distributed) -> torch.device:
    """cpu, cuda (this rank's LOCAL_RANK GPU under torchrun) or auto (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: torch sees no CUDA device (this torch build or machine has none)")
        return torch.device("cuda", ddp.local_rank % torch.cuda.device_count())
    raise ValueError(f"unknown device {name!r}: use cpu, cuda or auto")


def preset_name(cfg: TrainConfig, model_cfg: RestorerConfig, init_ckpt: dict | None) -> str:
    """The preset the trained architecture is: the named one, or for --init-from the matching one."""
    if init_ckpt is None:
        return cfg.preset
    match = next((name for name, p in PRESETS.items() if p == model_cfg), "")
    return match or str(init_ckpt.get("train_config", {}).get("preset", ""))


def checkpoint_contract(cfg: TrainConfig, model_cfg: RestorerConfig, preset_label: str, step: int = 0,
                        world_size: int = 1) -> ModelContract:
    """The model contract stored in every checkpoint (`ckpt["contract"]`, JSON).

    It describes the checkpoint's torch model (NCHW); `quantization` is "int8-qat" once QAT has
    frozen its int8 ranges (the weights themselves are still float), else "float".
    """
    recipe = {"steps": cfg.steps, "lr": cfg.lr, "schedule": cfg.schedule, "ema": cfg.ema, "preset": preset_label,
              "data": list(cfg.data), "degradation": json.loads(json.dumps(asdict(cfg.degradation))),
              "batch": cfg.patch.batch, "calib_percentile": cfg.calib_percentile, "patch": cfg.patch.patch, "world_size": world_size, "step": step}
    return ModelContract(task=cfg.degradation.task, channels=model_cfg.channels, size_multiple=model_cfg.size_multiple,
                         tile_size=cfg.tile_size, layout=TORCH_LAYOUT, quantization="int8-qat" if cfg.qat else "float",
                         preset=preset_label, recipe=recipe)


class MetricsLog:
    """metrics.jsonl (one JSON object per event) and metrics.csv (one row per logged step) in the run folder.

    CSV columns: step, loss, lr, mpix_per_s, then val_psnr_<set> for each validation set (empty
    where a row has no value). Appended on resume; if the columns changed, the old rows are kept
    under the union of both headers.
    """

    def __init__(self, out: Path, val_names: list[str]) -> None:
        self.columns = ["step", "loss", "lr", "mpix_per_s"] + [f"val_psnr_{n}" for n in val_names]
        self.jsonl = (out / "metrics.jsonl").open("a")
        path = out / "metrics.csv"
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                old_columns, rows = list(reader.fieldnames or []), list(reader)
            if old_columns != self.columns:
                self.columns = old_columns + [c for c in self.columns if c not in old_columns]
                tmp = path.with_suffix(".csv.tmp")
                with tmp.open("w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=self.columns, restval="")
                    writer.writeheader()
                    writer.writerows(rows)
                os.replace(tmp, path)
        self.csv = path.open("a", newline="")
        self.writer = csv.DictWriter(self.csv, fieldnames=self.columns, restval="", extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def event(self, record: dict) -> None:
        self.jsonl.write(json.dumps(record) + "\n")

    def row(self, values: dict) -> None:
        self.writer.writerow(values)

    def flush(self) -> None:
        self.jsonl.flush()
        self.csv.flush()

    def close(self) -> None:
        self.jsonl.close()
        self.csv.close()


@torch.no_grad()
def evaluate(model: Restorer, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> float:
    """Mean PSNR of the model on fixed (name, degraded, clean) pairs; output clipped as saved."""
    model.eval()
    device = next(model.parameters()).device
    scores = []
    for _, degraded, clean in pairs:
        out = model(torch.from_numpy(degraded.transpose(2, 0, 1)[None].copy()).to(device))
        restored = out[0].float().cpu().numpy().transpose(1, 2, 0).clip(0, 1)
        scores.append(psnr(np.round(restored * 255) / 255, clean))
    return float(np.mean(scores))


def calibrate(model: Restorer, sampler: PatchSampler, batches: int, percentile: float = 100.0,
              progress: bool = True) -> None:
    """Observe activation ranges on training batches, freeze them, switch fake-quant on.

    `percentile` (in %) < 100 records each batch's central share of values instead of min/max.
    Every rank observes the same batches, so every rank freezes the same ranges. `progress` shows
    a bar (on a terminal only: it is minutes on a large model and says nothing otherwise).
    """
    device = next(model.parameters()).device
    set_observer_percentile(model, percentile / 100.0)
    set_quant_mode(model, "observe")
    with torch.no_grad():
        for i in tqdm(range(batches), desc="qat calibration", unit="batch", dynamic_ncols=True,
                      disable=None if progress else True):  # None: tqdm's own choice, off when not a TTY
            model(torch.from_numpy(sampler.batch(10_000_000 + i)[0]).to(device))
    freeze_ranges(model)
    set_quant_mode(model, "quant")


def float_teacher(model: Restorer) -> Restorer:
    """A frozen copy of `model` with quantization off: the float model that `--distill` pulls the
    fake-quantized one towards, alongside the clean target."""
    teacher = copy.deepcopy(model).requires_grad_(False)
    set_quant_mode(teacher, "off")
    return teacher.eval()


def model_prior(model: Restorer) -> Callable[[np.ndarray], np.ndarray]:
    """`model` as the denoiser of a pnp-prior sampler: NxHxWxC 8-bit-rounded float32 in, the same
    rounded to 8 bits out, as the board's INT8 prior returns it. No gradient flows through it."""
    device = next(model.parameters()).device

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        out = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)).float().clamp(0, 1)
        return (torch.round(out * PIXEL_MAX) / PIXEL_MAX).cpu().numpy().transpose(0, 2, 3, 1).copy()

    return run


def validation_degradation(train_deg: DegradationConfig) -> DegradationConfig:
    """Denoisers are tracked at the standard AWGN sigma 25; deblurrers on their training mix."""
    if train_deg.task == "denoise" and train_deg.camera_prob > 0:  # a real-noise model: tracked on camera noise
        return replace(train_deg, camera_prob=1.0)
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
    """Run (or resume) training; returns the path of the best checkpoint.

    Under torchrun (WORLD_SIZE > 1) it joins the process group (gloo on CPU, NCCL on CUDA), trains
    data-parallel and leaves the group at the end; a group the caller set up is used and kept.
    """
    ddp = distributed_from_env()
    device = resolve_device(cfg.device, ddp)
    owns_group = ddp.enabled and not dist.is_initialized()
    if owns_group:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        ddp = distributed_from_env()
    try:
        return _train(cfg, ddp, device)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, ddp: Distributed, device: torch.device) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.patch.seed)
    if cfg.amp and cfg.qat:
        raise ValueError("--amp cannot be combined with --qat: QAT simulates int8 arithmetic exactly in float32, "
                         "and bfloat16/float16 autocast would round the fake-quantized values")
    if cfg.distill < 0:
        raise ValueError(f"--distill must be >= 0, got {cfg.distill}")
    if cfg.degradation.task == "pnp-prior" and cfg.loader_workers:
        raise ValueError("--task pnp-prior runs the model inside the sampler, so batches are made in the training "
                         "process: leave --loader-workers at 0")
    if cfg.distill and not cfg.qat:
        raise ValueError("--distill is a QAT option: the teacher is the float model that --qat starts from")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if cfg.warm_start and cfg.init_from:
        raise ValueError("--warm-start and --init-from exclude each other: --init-from keeps the checkpoint's "
                         "architecture, --warm-start loads its weights into --preset")
    init_ckpt = None
    if cfg.init_from:
        model, init_ckpt = load_restorer(cfg.init_from)
        set_quant_mode(model, "off")
        model_cfg = model.cfg
        # the architecture comes from the checkpoint, so its preset name is the one to record
        cfg = replace(cfg, preset=init_ckpt.get("train_config", {}).get("preset", cfg.preset))
        if cfg.residual_step and cfg.residual_step != model_cfg.residual_step:
            model_cfg = replace(model_cfg, residual_step=cfg.residual_step)
            resized = Restorer(model_cfg)
            load_weights(resized, model.state_dict())
            set_quant_mode(resized, "off")
            model = resized
    else:
        if cfg.qat:
            raise ValueError("QAT fine-tunes a trained float model: pass init_from (--init-from CKPT)")
        model = Restorer(replace(preset(cfg.preset), residual_step=cfg.residual_step or preset(cfg.preset).residual_step))
        model_cfg = model.cfg
        if cfg.warm_start:
            log.info("warm start: %d tensors from %s", warm_start_weights(model, cfg.warm_start), cfg.warm_start)
    label = preset_name(cfg, model_cfg, init_ckpt)
    checkpoint_contract(cfg, model_cfg, label)  # a bad --tile-size fails here, not at the first checkpoint
    model.to(device)
    model.grad_checkpoint = cfg.grad_checkpoint
    if ddp.enabled:
        log.info("rank %d of %d (%s on %s): trains on batches step * %d + %d", ddp.rank, ddp.world_size,
                 dist.get_backend(), device, ddp.world_size, ddp.rank)
    if cfg.amp and device.type == "cpu" and ddp.is_main:
        log.warning("--amp on CPU: bfloat16 autocast is usually slower than float32 on CPUs without native "
                    "bfloat16 (AVX512-BF16/AMX) and this model's small convolutions")

    train_paths, val_sets = _split_data(cfg)
    images = load_images(train_paths, model_cfg.channels)
    if train_paths and not images:  # never fall back to dead leaves silently
        raise ValueError(f"none of the {len(train_paths)} training images in {', '.join(cfg.data)} could be read")
    if ddp.is_main:
        log.info("training on %d images, validating on %s", len(images), {k: len(v) for k, v in val_sets.items()})
    sampler = PatchSampler(images, cfg.degradation, cfg.patch, model_cfg.channels)
    val: dict[str, list] = {}
    if ddp.is_main:  # only rank 0 validates
        val = {name: validation_pairs(paths, validation_degradation(cfg.degradation), model_cfg.size_multiple,
                                      channels=model_cfg.channels)
               for name, paths in val_sets.items()}
        val = {name: pairs for name, pairs in val.items() if pairs}  # a set whose every image was unreadable
        if not val:  # no photos at all: validate on fixed dead-leaves patches
            from .data import dead_leaves
            from .degradations import degrade
            rng = np.random.default_rng(99)
            clean = [dead_leaves(128, rng, model_cfg.channels) for _ in range(4)]
            val = {"dead-leaves": [(f"dl{i}", degrade(c, cfg.degradation, rng), c) for i, c in enumerate(clean)]}

    teacher = float_teacher(model) if cfg.distill else None
    if cfg.qat:
        calibrate(model, sampler, cfg.calib_batches, cfg.calib_percentile, progress=ddp.is_main)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    ema = copy.deepcopy(model).requires_grad_(False) if ddp.is_main else None
    if cfg.degradation.task == "pnp-prior":  # later HQS iterations are made by the model being trained
        sampler.prior = model_prior(ema if ema is not None else net)
    start, best = 0, -math.inf
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        load_weights(model, ckpt["model"])
        if ema is not None:
            load_weights(ema, ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        if scaler.is_enabled() and ckpt.get("amp_scaler"):
            scaler.load_state_dict(ckpt["amp_scaler"])
        start, best = int(ckpt["step"]), float(ckpt.get("best", -math.inf))
        if ddp.is_main:
            log.info("resumed from %s at step %d", last_path, start)
            before = int(ckpt.get("train_config", {}).get("world_size", 1))
            if before != ddp.world_size:
                log.warning("the checkpoint was written by %d process(es), this run has %d: batches from step %d on "
                            "follow the new rule (step * %d + rank)", before, ddp.world_size, start, ddp.world_size)
    net = model  # the Restorer itself: EMA, checkpoints and gradient clipping use it
    if ddp.enabled:
        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def payload(step: int) -> dict:
        contract = checkpoint_contract(cfg, model_cfg, label, step, ddp.world_size)
        extra = {"amp_scaler": scaler.state_dict()} if scaler.is_enabled() else {}
        return {"model_config": model_cfg.to_dict(), "model": net.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt.state_dict(), "step": step, "best": best, "qat": cfg.qat,
                "train_config": {**json.loads(json.dumps(asdict(cfg))), "world_size": ddp.world_size},
                "contract": contract.to_json(), **extra}

    metrics = MetricsLog(out, list(val)) if ddp.is_main else None
    # an exception mid-run leaves the pool to multiprocessing's exit finalizer, which terminates it
    prefetch = (BatchPrefetcher(sampler, (batch_index(s, ddp) for s in range(start, cfg.steps)), cfg.loader_workers)
                if cfg.loader_workers > 0 else None)
    model.train()
    t0, seen = time.time(), 0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="qat" if cfg.qat else "train",
               dynamic_ncols=True, mininterval=5, disable=not ddp.is_main)
    for step in bar:
        lr = learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        arrays = prefetch.next() if prefetch is not None else sampler.batch(batch_index(step, ddp))
        degraded, clean = (torch.from_numpy(a).to(device, non_blocking=True) for a in arrays)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=cfg.amp):
            restored = model(degraded)
        loss = restoration_loss(restored.float(), clean, cfg.freq_loss)
        if teacher is not None:
            with torch.no_grad():
                target = teacher(degraded)
            loss = loss + cfg.distill * charbonnier(restored, target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        if ema is not None:
            with torch.no_grad():
                decay = min(cfg.ema, (1 + step) / (10 + step))
                for e, p in zip(ema.state_dict().values(), net.state_dict().values()):
                    e.lerp_(p, 1 - decay) if e.is_floating_point() else e.copy_(p)
        seen += degraded.numel() // model_cfg.channels
        done = step + 1
        row: dict = {}
        if done % cfg.log_every == 0:
            mean_loss = loss.detach().clone()
            if ddp.enabled:  # every rank reaches this at the same steps
                dist.all_reduce(mean_loss)
                mean_loss /= ddp.world_size
            rate = seen * ddp.world_size / (time.time() - t0) / 1e6  # all ranks together
            record = {"step": done, "loss": mean_loss.item(), "lr": lr, "mpix_per_s": rate}
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.1e}", mpix_s=f"{rate:.2f}")
            if metrics is not None:
                metrics.event(record)
                row.update(record)
        if ddp.is_main and (done % cfg.val_every == 0 or done == cfg.steps):
            if cfg.degradation.task == "pnp-prior":  # whole deconvolutions, the model as their prior
                scores = {name: pnp_validation_psnr(model_prior(ema), [c for _, _, c in pairs][:PNP_VAL_IMAGES],
                                                    cfg.degradation)
                          for name, pairs in val.items()}
            else:
                scores = {name: evaluate(ema, pairs) for name, pairs in val.items()}
            ema.train()
            metrics.event({"step": done, "val_psnr": scores})
            row.update({"step": done, **{f"val_psnr_{k}": v for k, v in scores.items()}})
            tqdm.write(f"step {done}: val PSNR " + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
            score = next(iter(scores.values()))
            if score > best:
                best = score
                save_checkpoint(best_path, payload(done))
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            if ddp.is_main:
                save_checkpoint(last_path, payload(done))
            if ddp.enabled:  # no rank runs ahead of a checkpoint being written
                dist.barrier()
        if metrics is not None:
            if row:
                metrics.row(row)
            metrics.flush()
    if metrics is not None:
        metrics.close()
    if prefetch is not None:
        prefetch.close()
    if ddp.is_main and not best_path.exists():
        save_checkpoint(best_path, payload(cfg.steps))
    if ddp.enabled:
        checksum = sum(float(p.detach().double().abs().sum()) for p in net.parameters())
        log.info("rank %d of %d: done at step %d, weights checksum %.12g", ddp.rank, ddp.world_size, cfg.steps, checksum)
        dist.barrier()
    return best_path
