"""Checkpoints that carry their own model arguments, so any loader can rebuild the network.

Files are written atomically (temp file + rename) and read with `weights_only=True`: a checkpoint
with a pickled payload is refused, never retried unsafely.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .model import InvertedResidual, Restorer, RestorerConfig, Upsample
from .quant import ActQuant, set_quant_mode

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint is missing, unsafe or not an edge-restore checkpoint."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write `payload` (tensors, dicts, lists and scalars only) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; raises CheckpointError for anything but plain tensors and data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have many types; all mean "refused"
        raise CheckpointError(f"refusing to load {path}: not a plain weights-only checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or "model_config" not in ckpt or "model" not in ckpt:
        raise CheckpointError(f"{path} is not an edge-restore checkpoint (no model_config/model)")
    return ckpt


def checkpoint_weights(ckpt: dict[str, Any], use_ema: bool = True) -> dict[str, Any]:
    """The state dict a checkpoint deploys: its EMA weights when it has them (and use_ema), else the raw ones."""
    return ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]


def strip_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Write the inference part of a checkpoint (EMA weights, model arguments, recipe) to `dst`.

    What ships beside an exported model so its parity ladder can be rerun: no optimizer state.
    """
    ckpt = load_checkpoint(src)
    weights = checkpoint_weights(ckpt)
    keep = {k: ckpt[k] for k in ("model_config", "qat", "train_config", "contract", "step", "best") if k in ckpt}
    save_checkpoint(dst, {**keep, "model": weights, "ema": None})
    return Path(dst)


def load_weights(model: Restorer, state: dict[str, Any]) -> None:
    """Load a state dict strictly, except for constants: the buffers of fixed-range quantization
    points (I/O pixel grid, hard-sigmoid ranges) may be absent in checkpoints written before a
    point was added; they keep their built-in values."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    fixed = {f"{name}.{b}" for name, m in model.named_modules() if isinstance(m, ActQuant) and m.is_fixed
             for b in ("scale", "zero_point", "lo", "hi")}
    for m in model.modules():  # fixed ranges belong to the architecture (e.g. residual_step), not the weights
        if isinstance(m, ActQuant) and m.is_fixed:
            m.scale.fill_(float(m.fixed[0]))
            m.zero_point.fill_(int(m.fixed[1]))
    if unexpected or set(missing) - fixed:
        raise CheckpointError(f"checkpoint does not fit the model: missing {sorted(set(missing) - fixed)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}")


def warm_start_weights(model: Restorer, path: str | Path) -> int:
    """Copy a checkpoint's (EMA) parameters into a model of another activation or block layout.

    Every parameter the two share by name must have the same shape (e.g. the small denoiser into
    the minimalistic preset, which only swaps hard-swish for ReLU, or into the `fast` preset,
    which drops the full-resolution blocks and adds a level). Parameters only the model has are
    new: inverted-residual blocks and upsampling projections made entirely of them start as the
    identity / zero (their last conv zeroed), so the copied network's function is where training
    resumes. Checkpoint tensors the model lacks are left out. Returns the number of tensors copied.
    """
    ckpt = load_checkpoint(path)
    state = checkpoint_weights(ckpt)
    own = dict(model.named_parameters())
    shared = [k for k in own if k in state]
    bad = [k for k in shared if tuple(state[k].shape) != tuple(own[k].shape)]
    if bad or not shared:
        raise CheckpointError(f"{path}: cannot warm-start this architecture: "
                              + (f"{len(bad)} parameters of another shape, e.g. {bad[:3]}" if bad else "no parameter in common"))
    with torch.no_grad():
        for k in shared:
            own[k].copy_(state[k])
        for name, module in model.named_modules():
            last = module.project.conv if isinstance(module, InvertedResidual) else (
                module.proj.conv if isinstance(module, Upsample) else None)
            if last is not None and not any(f"{name}.{k}" in state for k, _ in module.named_parameters()):
                last.weight.zero_()
                last.bias.zero_()
    new = len(own) - len(shared)
    dropped = len(set(state) - set(model.state_dict()))
    if new or dropped:
        log.info("warm start: %d new tensors start fresh (new blocks as identities), %d checkpoint tensors unused", new, dropped)
    return len(shared)


def checkpoint_task(ckpt: dict[str, Any]) -> str:
    """The task a checkpoint was trained for ("denoise" when it does not say)."""
    return str(ckpt.get("train_config", {}).get("degradation", {}).get("task", "denoise"))


def load_restorer(path: str | Path, use_ema: bool = True) -> tuple[Restorer, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint (EMA weights by default), in eval mode.

    A QAT checkpoint comes back with its frozen quantization points switched on.
    """
    ckpt = load_checkpoint(path)
    model = Restorer(RestorerConfig.from_dict(ckpt["model_config"]))
    state = checkpoint_weights(ckpt, use_ema)
    load_weights(model, state)
    set_quant_mode(model, "quant" if ckpt.get("qat") else "off")
    return model.eval(), ckpt
