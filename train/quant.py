"""Fake quantization that follows TFLite's int8 specification, as plain torch modules.

Why not torch.ao eager QAT: its fused observer/fake-quant op does not export to ONNX. The core
ops `torch.fake_quantize_per_tensor_affine` / `_per_channel_affine` do, as clean
QuantizeLinear/DequantizeLinear pairs, so the model carries explicit quantization points:

* `ActQuant` sits on every tensor TFLite materialises in int8 (conv outputs after their fused
  ReLU, hard-swish outputs, adds, the SE gate, the network input and output). It is per-tensor
  asymmetric int8 in [-128, 127]. It observes ranges (EMA of min/max), then freezes them; the
  frozen scale and zero point are buffers, so they are part of every checkpoint.
* `QConv2d` fake-quantizes its weight per output channel, symmetric, zero point 0, range
  [-127, 127] (TFLite's narrow-range weights). Bias stays float: TFLite derives its int32 scale.

Modes: "off" (float identity), "observe" (update ranges, pass through), "quant" (fake-quant with
frozen ranges). Ops TFLite treats as same-scale (nearest resize) get no quantization point.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

QMIN, QMAX = -128, 127
WEIGHT_QMAX = 127
MODES = ("off", "observe", "quant")
# Hard-sigmoid relu6(x + 3) / 6 is quantized in two steps with these fixed (scale, zero point):
# [0, 6] after the fused ADD+RELU6, [0, 1] after the MUL by 1/6 (the same int8 codes).
RELU6_QPARAMS = (6.0 / 255.0, -128)
GATE_QPARAMS = (1.0 / 255.0, -128)
# The head's residual r (output = input + r, both on the 8-bit pixel grid) is pinned to steps of
# 2/255 around 0, covering [-1, 1): on the pixel grid's own lattice, so input + r lands on it with
# no second rounding, and wide enough that strong noise is never clipped (an observed range clipped
# the residual at about +-0.45, which cost most at sigma 50).
RESIDUAL_QPARAMS = (2.0 / 255.0, 0)


def residual_qparams(step_levels: float = 2.0) -> tuple[float, int]:
    """Fixed int8 parameters of the residual head: `step_levels` 8-bit levels per int8 step, symmetric."""
    return (step_levels / 255.0, 0)


def affine_from_range(lo: float, hi: float) -> tuple[float, int]:
    """TFLite-style asymmetric int8 scale/zero-point covering [lo, hi] (always including 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / (QMAX - QMIN), 1e-8)
    zero_point = int(round(QMIN - lo / scale))
    return scale, max(QMIN, min(QMAX, zero_point))


#: Values per tensor that a percentile observer looks at (an even stride through the tensor, so
#: every process of a data-parallel run picks the same ones).
PERCENTILE_SAMPLE = 1 << 18


class ActQuant(nn.Module):
    """Observer + per-tensor int8 fake quantization for one activation tensor.

    `fixed=(scale, zero_point)` pins the parameters (network I/O on the 8-bit pixel grid, the
    hard-sigmoid gate), as TFLite does for ops with a fixed output range.
    """

    def __init__(self, fixed: tuple[float, int] | None = None, momentum: float = 0.05) -> None:
        super().__init__()
        self.mode = "off"
        self.momentum = momentum
        # Share of values kept inside the range when observing; 1.0 is the batch min/max. A
        # slightly lower value (0.9999) trades rare clipped outliers for a finer int8 step.
        self.percentile = 1.0
        self.fixed = fixed
        scale, zp = fixed if fixed is not None else (1.0, 0)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("zero_point", torch.tensor(int(zp), dtype=torch.int32))
        self.register_buffer("lo", torch.tensor(float("inf")))
        self.register_buffer("hi", torch.tensor(float("-inf")))

    @property
    def is_fixed(self) -> bool:
        return self.fixed is not None

    def observe(self, x: torch.Tensor) -> None:
        lo, hi = self._batch_range(x.detach())
        if not torch.isfinite(self.lo):
            self.lo.copy_(lo)
            self.hi.copy_(hi)
        else:
            self.lo.lerp_(lo, self.momentum)
            self.hi.lerp_(hi, self.momentum)

    def _batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.percentile >= 1.0:
            return x.amin(), x.amax()
        flat = x.flatten().float()
        flat = flat[:: max(1, -(-flat.numel() // PERCENTILE_SAMPLE))]
        q = torch.tensor([1.0 - self.percentile, self.percentile], device=flat.device)
        lo, hi = torch.quantile(flat, q)
        return lo, hi

    def freeze(self) -> None:
        """Turn the observed range into the frozen scale and zero point (a pinned point re-pins: a
        float checkpoint loaded into it may carry unobserved placeholder values)."""
        if self.fixed is not None:
            self.scale.fill_(self.fixed[0])
            self.zero_point.fill_(self.fixed[1])
            return
        if not torch.isfinite(self.lo):
            raise RuntimeError("ActQuant.freeze() before any observation: run calibration first")
        scale, zp = affine_from_range(float(self.lo), float(self.hi))
        self.scale.fill_(scale)
        self.zero_point.fill_(zp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        if self.mode == "observe":
            self.observe(x)
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, QMIN, QMAX)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, scale={float(self.scale):.3g}, zero_point={int(self.zero_point)}"


def weight_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric scale: max |w| maps to 127."""
    return weight.detach().abs().amax(dim=tuple(range(1, weight.dim()))).clamp(min=1e-8) / WEIGHT_QMAX


def _fake_quantize_per_channel(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # ONNX only admits [-128, 127]; with scale = max|w|/127 no weight reaches -128, so this is
    # exactly TFLite's narrow range [-127, 127].
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, QMIN, QMAX)


class QConv2d(nn.Conv2d):
    """Conv2d whose weight is fake-quantized per output channel in "quant" mode.

    During training the scale follows the weight (max |w| / 127). For export, `freeze_weights`
    stores the scales as constants so the ONNX graph holds a plain QuantizeLinear/DequantizeLinear
    pair on each weight instead of the ops that compute the scale.
    """

    mode = "off"
    frozen_scale: torch.Tensor | None = None

    def freeze_weights(self) -> None:
        self.frozen_scale = weight_scale(self.weight).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.mode == "quant":
            scale = weight_scale(weight).float() if self.frozen_scale is None else self.frozen_scale
            weight = _fake_quantize_per_channel(weight, scale)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def set_quant_mode(model: nn.Module, mode: str) -> None:
    """Switch every quantization point of `model` to "off", "observe" or "quant"."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for m in model.modules():
        if isinstance(m, (ActQuant, QConv2d)):
            m.mode = mode


def set_observer_percentile(model: nn.Module, percentile: float) -> None:
    """Make every activation observer of `model` record the given central share of values
    (a fraction in (0.5, 1]; 1.0 records min/max)."""
    if not 0.5 < percentile <= 1.0:
        raise ValueError(f"observer percentile must be a fraction in (0.5, 1], got {percentile}")
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.percentile = percentile


def freeze_ranges(model: nn.Module) -> None:
    """Freeze every observed activation range into its scale/zero point."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            m.freeze()


def quant_mode(model: nn.Module) -> str:
    """The mode of the model's quantization points ("off" if it has none)."""
    for m in model.modules():
        if isinstance(m, ActQuant):
            return m.mode
    return "off"
