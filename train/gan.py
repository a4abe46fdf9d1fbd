"""Adversarial fine-tuning (`python -m train --gan --init-from CKPT ...`): a perceptual restorer.

Starts from a trained restorer (float or QAT checkpoint; a QAT one is fine-tuned as the float
model inside it) and trains it against a patch discriminator (`train.discriminator`):

    generator loss = content x Charbonnier(out, clean)
                   + adv x adversarial(out)            relativistic average (default) or WGAN
                   + fm x sum_l |D_l(out) - D_l(clean)| discriminator feature matching: a feature
                                                        loss that needs no downloaded network
    discriminator  = relativistic BCE, or WGAN critic + gp x gradient penalty (WGAN-GP)

The generator keeps the restorer's architecture, so its checkpoints are the same format as the
other stages': `--qat --init-from OUT/best.pt` and `python -m export` take them unchanged.
OUT/last.pt also holds the discriminator, both optimizers and the step (resumable). OUT/best.pt is
the validated EMA generator with the lowest NIQE among those within --max-psnr-drop dB of the
starting model's PSNR (PSNR alone would always pick the starting model); with no image large
enough for NIQE, the one with the best PSNR.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge_runtime.metrics import psnr

from .checkpoint import load_checkpoint, load_restorer, load_weights, save_checkpoint
from .data import PatchSampler, load_images, validation_pairs
from .discriminator import DiscriminatorConfig, PatchDiscriminator
from .losses import charbonnier
from .model import Restorer
from .nr_metrics import MetricError, load_niqe_model, niqe
from .quant import set_quant_mode
from .train import (Distributed, MetricsLog, TrainConfig, _split_data, checkpoint_contract, distributed_from_env,
                    preset_name, resolve_device,
                    validation_degradation)

log = logging.getLogger(__name__)
LOSSES = ("relativistic", "wgan-gp")


@dataclass
class GanConfig:
    """The adversarial stage: the shared training settings plus the GAN's own."""

    base: TrainConfig = field(default_factory=TrainConfig)  # out_dir, init_from, data, steps, lr (generator), ...
    loss: str = "relativistic"  # relativistic | wgan-gp
    content_weight: float = 1.0
    adv_weight: float = 5e-3
    fm_weight: float = 0.05
    gp_weight: float = 10.0  # WGAN-GP only
    d_lr: float = 2e-4
    d_width: int = 32
    d_stages: int = 3
    max_psnr_drop: float = 1.0  # dB below the starting model that best.pt may give up for a lower NIQE


def adversarial_losses(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss without any penalty, generator adversarial loss) from patch logits.

    For the discriminator step pass `d_fake` computed on detached outputs; for the generator step
    `d_real` may be detached (it carries no generator gradient either way).
    """
    if loss == "relativistic":
        real_vs_fake = d_real - d_fake.mean()
        fake_vs_real = d_fake - d_real.mean()
        ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_fake)
        d_loss = (F.binary_cross_entropy_with_logits(real_vs_fake, ones)
                  + F.binary_cross_entropy_with_logits(fake_vs_real, zeros)) / 2
        g_loss = (F.binary_cross_entropy_with_logits(real_vs_fake, torch.zeros_like(d_real))
                  + F.binary_cross_entropy_with_logits(fake_vs_real, torch.ones_like(d_fake))) / 2
        return d_loss, g_loss
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean(), -d_fake.mean()
    raise ValueError(f"unknown GAN loss {loss!r}: use one of {', '.join(LOSSES)}")


def gradient_penalty(disc: PatchDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (||grad D(x)|| - 1)^2 at random points between real and generated batches."""
    t = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator's activations of the output and of the clean image, summed over stages."""
    return sum((f - r.detach()).abs().mean() for f, r in zip(fake_feats, real_feats))


@torch.no_grad()
def validate(model: Restorer, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[float, float | None]:
    """Mean PSNR and mean NIQE (over images large enough, else None) of 8-bit outputs on fixed pairs."""
    model.eval()
    device = next(model.parameters()).device
    niqe_model = load_niqe_model()
    psnrs, niqes = [], []
    for _, degraded, clean in pairs:
        out = model(torch.from_numpy(degraded.transpose(2, 0, 1)[None].copy()).to(device))
        restored = np.round(out[0].float().cpu().numpy().transpose(1, 2, 0).clip(0, 1) * 255) / 255
        psnrs.append(psnr(restored, clean))
        try:
            niqes.append(niqe(restored, niqe_model))
        except MetricError:
            pass
    return float(np.mean(psnrs)), (float(np.mean(niqes)) if niqes else None)


def _validation_sets(cfg: TrainConfig, size_multiple: int, channels: int) -> dict[str, list]:
    _, val_sets = _split_data(cfg)
    val = {name: validation_pairs(paths, validation_degradation(cfg.degradation), size_multiple, channels=channels)
           for name, paths in val_sets.items()}
    val = {name: pairs for name, pairs in val.items() if pairs}
    if not val:  # no photos: fixed dead-leaves images, large enough for NIQE's two 96x96 blocks
        from .data import dead_leaves
        from .degradations import degrade

        rng = np.random.default_rng(99)
        clean = [dead_leaves(192, rng, channels) for _ in range(2)]
        val = {"dead-leaves": [(f"dl{i}", degrade(c, cfg.degradation, rng), c) for i, c in enumerate(clean)]}
    return val


def _better(score: tuple[float, float | None], best: tuple[float, float | None] | None, floor: float) -> bool:
    """Whether a validation (PSNR, NIQE) beats the best so far: lower NIQE at PSNR >= floor, else higher PSNR."""
    p, n = score
    if best is None:
        return p >= floor or n is None
    if n is None or best[1] is None:
        return p > best[0]
    if p < floor:
        return False
    return best[0] < floor or n < best[1]


def train_gan(gcfg: GanConfig) -> Path:
    """Run (or resume) adversarial fine-tuning; returns the path of the best checkpoint."""
    cfg = gcfg.base
    if not cfg.init_from:
        raise ValueError("--gan fine-tunes a trained restorer: pass --init-from CKPT (e.g. models/denoise_qat.pt)")
    if gcfg.loss not in LOSSES:
        raise ValueError(f"--gan-loss must be one of {', '.join(LOSSES)}, got {gcfg.loss!r}")
    for name in ("content_weight", "adv_weight", "fm_weight", "gp_weight", "max_psnr_drop"):
        if not getattr(gcfg, name) >= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(gcfg, name)}")
    if cfg.qat or cfg.distill or cfg.warm_start:
        raise ValueError("--gan fine-tunes the float model: drop --qat/--distill/--warm-start (run --qat on its result)")
    if cfg.amp or cfg.grad_checkpoint:
        raise ValueError("--gan runs in float32 without gradient checkpointing: drop --amp/--grad-checkpoint")
    if distributed_from_env().enabled:
        raise ValueError("--gan runs as one process (not under torchrun)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, Distributed())
    torch.manual_seed(cfg.patch.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    gen, init_ckpt = load_restorer(cfg.init_from)
    set_quant_mode(gen, "off")  # a QAT checkpoint holds float weights: the GAN tunes those
    model_cfg = gen.cfg
    cfg = replace(cfg, preset=init_ckpt.get("train_config", {}).get("preset", cfg.preset))
    label = preset_name(cfg, model_cfg, init_ckpt)
    checkpoint_contract(cfg, model_cfg, label)  # a bad --tile-size fails here
    disc = PatchDiscriminator(DiscriminatorConfig(model_cfg.channels, gcfg.d_width, gcfg.d_stages,
                                                  spectral_norm=gcfg.loss == "relativistic"))
    gen.to(device)
    disc.to(device)

    train_paths, _ = _split_data(cfg)
    images = load_images(train_paths, model_cfg.channels)
    if train_paths and not images:
        raise ValueError(f"none of the {len(train_paths)} training images in {', '.join(cfg.data)} could be read")
    sampler = PatchSampler(images, cfg.degradation, cfg.patch, model_cfg.channels)
    val = _validation_sets(cfg, model_cfg.size_multiple, model_cfg.channels)
    log.info("GAN fine-tuning on %d images (%s loss), validating on %s", len(images), gcfg.loss,
             {k: len(v) for k, v in val.items()})

    # WGAN critics and GANs in general train with little or no momentum (Adam beta1 0 / 0.5)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=gcfg.d_lr, betas=(0.0 if gcfg.loss == "wgan-gp" else 0.5, 0.999))
    ema = copy.deepcopy(gen).requires_grad_(False)
    start, best, baseline = 0, None, None
    last_path, best_path = out / "last.pt", out / "best.pt"
    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path)
        load_weights(gen, ckpt["model"])
        load_weights(ema, ckpt["ema"])
        disc.load_state_dict(ckpt["discriminator"])
        opt_g.load_state_dict(ckpt["optimizer"])
        opt_d.load_state_dict(ckpt["d_optimizer"])
        start = int(ckpt["step"])
        baseline = ckpt["gan_state"]["baseline"]
        best = tuple(ckpt["gan_state"]["best"]) if ckpt["gan_state"]["best"] else None
        log.info("resumed from %s at step %d", last_path, start)
    first = next(iter(val.values()))
    if baseline is None:
        baseline = list(validate(ema, first))
        tqdm.write(f"start: val PSNR {baseline[0]:.2f} dB, NIQE "
                   + (f"{baseline[1]:.3f}" if baseline[1] is not None else "- (images too small)"))
    floor = baseline[0] - gcfg.max_psnr_drop
    tcfg = {**json.loads(json.dumps(asdict(cfg))), "world_size": 1}

    def payload(step: int) -> dict:
        contract = checkpoint_contract(cfg, model_cfg, label, step)
        return {"model_config": model_cfg.to_dict(), "model": gen.state_dict(), "ema": ema.state_dict(),
                "optimizer": opt_g.state_dict(), "step": step, "best": best[0] if best else -math.inf, "qat": False,
                "train_config": {**tcfg, "gan": json.loads(json.dumps(asdict(replace(gcfg, base=TrainConfig()))))},
                "contract": contract.to_json(), "discriminator": disc.state_dict(), "d_optimizer": opt_d.state_dict(),
                "discriminator_config": disc.cfg.to_dict(),
                "gan_state": {"baseline": baseline, "best": list(best) if best else None}}

    metrics = MetricsLog(out, list(val))
    gen.train()
    t0, seen = time.time(), 0
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="gan", dynamic_ncols=True, mininterval=5)
    for step in bar:
        degraded, clean = (torch.from_numpy(a).to(device) for a in sampler.batch(step))
        fake = gen(degraded)

        # discriminator step on detached outputs
        disc.requires_grad_(True)
        d_real, d_fake = disc(clean), disc(fake.detach())
        d_loss, _ = adversarial_losses(gcfg.loss, d_real, d_fake)
        if gcfg.loss == "wgan-gp":
            d_loss = d_loss + gcfg.gp_weight * gradient_penalty(disc, clean, fake.detach())
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        # generator step: content + adversarial + feature matching; D's weights frozen
        disc.requires_grad_(False)
        d_fake, fake_feats = disc(fake, with_features=True)
        with torch.no_grad():
            d_real, real_feats = disc(clean, with_features=True)
        _, g_adv = adversarial_losses(gcfg.loss, d_real, d_fake)
        content = charbonnier(fake, clean)
        fm = feature_matching(fake_feats, real_feats)
        g_loss = gcfg.content_weight * content + gcfg.adv_weight * g_adv + gcfg.fm_weight * fm
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), cfg.grad_clip)
        opt_g.step()
        with torch.no_grad():
            decay = min(cfg.ema, (1 + step) / (10 + step))
            for e, p in zip(ema.state_dict().values(), gen.state_dict().values()):
                e.lerp_(p, 1 - decay) if e.is_floating_point() else e.copy_(p)
        seen += degraded.numel() // model_cfg.channels
        done = step + 1
        row: dict = {}
        if done % cfg.log_every == 0:
            record = {"step": done, "loss": g_loss.item(), "content": content.item(), "adv": g_adv.item(),
                      "fm": fm.item(), "d_loss": d_loss.item(), "lr": cfg.lr,
                      "mpix_per_s": seen / (time.time() - t0) / 1e6}
            if not all(math.isfinite(v) for v in record.values()):
                raise ValueError(f"step {done}: a loss is not finite ({record}); lower --lr/--adv-weight")
            bar.set_postfix(content=f"{record['content']:.4f}", adv=f"{record['adv']:.3f}", d=f"{record['d_loss']:.3f}")
            metrics.event(record)
            row.update(record)
        if done % cfg.val_every == 0 or done == cfg.steps:
            scores = {name: validate(ema, pairs) for name, pairs in val.items()}
            ema.train()
            p, n = scores[next(iter(scores))]
            metrics.event({"step": done, "val_psnr": {k: v[0] for k, v in scores.items()},
                           "val_niqe": {k: v[1] for k, v in scores.items()}})
            row.update({"step": done, **{f"val_psnr_{k}": v[0] for k, v in scores.items()}})
            tqdm.write(f"step {done}: val PSNR/NIQE " + ", ".join(
                f"{k} {v[0]:.2f} dB / {v[1]:.3f}" if v[1] is not None else f"{k} {v[0]:.2f} dB" for k, v in scores.items()))
            if _better((p, n), best, floor):
                best = (p, n)
                save_checkpoint(best_path, payload(done))
        if done % cfg.ckpt_every == 0 or done == cfg.steps:
            save_checkpoint(last_path, payload(done))
        if row:
            metrics.row(row)
        metrics.flush()
    metrics.close()
    if not best_path.exists():  # no validation met the PSNR floor: keep the last weights, say so
        log.warning("no validated step stayed within %.2f dB of the start (%.2f dB): best.pt is the last step",
                    gcfg.max_psnr_drop, baseline[0])
        save_checkpoint(best_path, payload(cfg.steps))
    return best_path


# --------------------------------------------------------------------------------------------
# Command line (options added to `python -m train`)
# --------------------------------------------------------------------------------------------


def add_gan_arguments(p: argparse.ArgumentParser) -> None:
    d = GanConfig()
    g = p.add_argument_group("adversarial fine-tuning (--gan; with --init-from, --lr for the generator)")
    g.add_argument("--gan", action="store_true",
                   help="fine-tune --init-from against a patch discriminator for a less smooth, more natural look")
    g.add_argument("--gan-loss", choices=LOSSES, default=d.loss,
                   help="relativistic average GAN with a spectral-norm discriminator, or WGAN-GP (default %(default)s)")
    g.add_argument("--content-weight", type=float, default=d.content_weight, help="Charbonnier weight (default %(default)s)")
    g.add_argument("--adv-weight", type=float, default=d.adv_weight, help="adversarial weight (default %(default)s)")
    g.add_argument("--fm-weight", type=float, default=d.fm_weight,
                   help="discriminator feature-matching weight (default %(default)s)")
    g.add_argument("--gp-weight", type=float, default=d.gp_weight, help="WGAN-GP gradient penalty (default %(default)s)")
    g.add_argument("--d-lr", type=float, default=d.d_lr, help="discriminator learning rate (default %(default)s)")
    g.add_argument("--d-width", type=int, default=d.d_width, help="discriminator base width (default %(default)s)")
    g.add_argument("--max-psnr-drop", type=float, default=d.max_psnr_drop,
                   help="best.pt: lowest val NIQE within this many dB of the start's PSNR (default %(default)s)")


def gan_config_from_args(args: argparse.Namespace, base: TrainConfig) -> GanConfig:
    return GanConfig(base=base, loss=args.gan_loss, content_weight=args.content_weight, adv_weight=args.adv_weight,
                     fm_weight=args.fm_weight, gp_weight=args.gp_weight, d_lr=args.d_lr, d_width=args.d_width,
                     max_psnr_drop=args.max_psnr_drop)
