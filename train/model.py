"""MobileNetV3-style encoder-decoder restorer, described as data rows plus one builder.

Every op is chosen for int8 deployment: 1x1/3x3/depthwise convolutions, ReLU (fused in TFLite)
or hard-swish (TFLite HARD_SWISH), adds instead of concatenations on the skips, nearest-neighbour
upsampling (a same-scale op in TFLite) after a 1x1 conv at low resolution, an optional
squeeze-excitation with a hard-sigmoid gate, and a global residual whose output is pinned to the
8-bit pixel grid. No batch norm, so there is nothing to fold before QAT. Inputs must have sides
that are a multiple of 2**depth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from edge_runtime.contract import io_quantization

from .quant import GATE_QPARAMS, RELU6_QPARAMS, ActQuant, QConv2d, residual_qparams



@dataclass(frozen=True)
class RestorerConfig:
    """Architecture of a restorer. `widths[i]` channels at 1/2**i resolution; `blocks[i]` inverted
    residual blocks per encoder stage (the last entry is the bottleneck); decoder mirrors them."""

    channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64)
    blocks: tuple[int, ...] = (1, 2, 2)
    expansion: int = 3
    activation: str = "hardswish"  # hardswish | relu
    use_se: bool = False
    se_reduction: int = 4
    # int8 step of the predicted residual in 8-bit levels: 2 covers residuals up to +-1 (heavy
    # noise); 1 halves the rounding of small residuals (real camera noise) and covers +-0.5
    residual_step: float = 2.0

    def __post_init__(self) -> None:
        if not self.residual_step > 0:
            raise ValueError(f"residual_step must be > 0, got {self.residual_step}")
        if len(self.widths) != len(self.blocks) or len(self.widths) < 1:
            raise ValueError("widths and blocks must have the same, non-zero length")
        if self.activation not in ("hardswish", "relu"):
            raise ValueError(f"activation must be 'hardswish' or 'relu', got {self.activation!r}")

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RestorerConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


_SMALL = RestorerConfig(widths=(24, 48, 96), blocks=(1, 2, 3), expansion=3)
# Speed: no full-resolution blocks (their 72-channel tensors and depthwise convs took a third of the
# small preset's int8 time) and a fourth level at 1/8 resolution for a wider context.
_FAST = RestorerConfig(widths=(24, 48, 96, 96), blocks=(0, 2, 2, 2), expansion=3)

PRESETS: dict[str, RestorerConfig] = {
    "tiny": RestorerConfig(widths=(16, 32, 32), blocks=(1, 1, 1), expansion=2),
    "small": _SMALL,
    "base": RestorerConfig(widths=(32, 64, 128, 128), blocks=(2, 2, 3, 3), expansion=4, use_se=True),
    "fast": _FAST,
    # Edge TPU friendly: the same networks with ReLU only (no hard-swish, no SE). The layer names are
    # the same, so each warm-starts from a checkpoint of the network it is derived from.
    "minimalistic": replace(_SMALL, activation="relu"),
    "fast-minimalistic": replace(_FAST, activation="relu"),
}


def preset(name: str) -> RestorerConfig:
    """The named architecture preset (see PRESETS)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6 as ADD with fused RELU6, then MUL by 1/6, each with its fixed int8 range.

    Written out rather than as one op because int8 HARD_SWISH/HARD_SIGMOID fall outside XNNPACK
    (TFLite's reference kernel took ~90% of the int8 model's time); ADD and MUL stay inside it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.q_relu6 = ActQuant(fixed=RELU6_QPARAMS)
        self.q_gate = ActQuant(fixed=GATE_QPARAMS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_gate(self.q_relu6(F.relu6(x + 3.0)) * (1.0 / 6.0))


class ConvAct(nn.Module):
    """Conv (+ activation), with quantization points where TFLite materialises tensors.

    ReLU fuses into the conv in TFLite (one point after it); hard-swish is x * hard_sigmoid(x),
    with a point after the conv, inside the gate, and after the product.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None,
                 out_qparams: tuple[float, int] | None = None) -> None:
        super().__init__()
        self.conv = QConv2d(cin, cout, k, stride, padding=k // 2, groups=groups)
        self.act = act
        self.q_conv = ActQuant(fixed=out_qparams)  # observed unless pinned
        self.gate = HardSigmoid() if act == "hardswish" else None
        self.q_act = ActQuant() if act == "hardswish" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.act == "relu":
            return self.q_conv(F.relu(x))
        x = self.q_conv(x)
        if self.act == "hardswish":
            return self.q_act(x * self.gate(x))
        return x


class SqueezeExcite(nn.Module):
    """Squeeze-excitation with a hard-sigmoid gate (global mean -> 1x1 -> ReLU -> 1x1 -> gate)."""

    def __init__(self, ch: int, reduction: int) -> None:
        super().__init__()
        hidden = max(8, ch // reduction)
        self.q_mean = ActQuant()
        self.reduce = ConvAct(ch, hidden, 1, act="relu")
        self.expand = ConvAct(hidden, ch, 1)
        self.gate = HardSigmoid()
        self.q_out = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.expand(self.reduce(self.q_mean(x.mean(dim=(2, 3), keepdim=True))))
        return self.q_out(x * self.gate(s))


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> optional SE -> 1x1 project, plus identity skip."""

    def __init__(self, ch: int, expansion: int, act: str, use_se: bool, se_reduction: int) -> None:
        super().__init__()
        hidden = ch * expansion
        self.expand = ConvAct(ch, hidden, 1, act=act)
        self.depthwise = ConvAct(hidden, hidden, 3, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, se_reduction) if use_se else nn.Identity()
        self.project = ConvAct(hidden, ch, 1)
        self.q_add = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_add(x + self.project(self.se(self.depthwise(self.expand(x)))))


class Upsample(nn.Module):
    """1x1 conv at low resolution, then nearest x2 (equal to conv after upsampling, 4x cheaper)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = ConvAct(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.proj(x), scale_factor=2.0, mode="nearest")


class Restorer(nn.Module):
    """U-Net of inverted residual blocks predicting a residual added to the input.

    `grad_checkpoint = True` recomputes the encoder, bottleneck and decoder stages in the backward
    pass instead of storing their activations (torch.utils.checkpoint, non-reentrant): less memory,
    about one more forward of compute, the same result. It applies only while training with
    gradients on, and never in QAT "observe" mode, whose range updates must not run twice.
    """

    grad_checkpoint: bool = False

    def __init__(self, cfg: RestorerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, act = cfg.widths, cfg.activation

        def stage(ch: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[InvertedResidual(ch, cfg.expansion, act, cfg.use_se, cfg.se_reduction) for _ in range(n)])

        self.q_in = ActQuant(fixed=io_quantization("int8"))
        self.stem = ConvAct(cfg.channels, w[0], 3, act=act)
        self.encoders = nn.ModuleList(stage(w[i], cfg.blocks[i]) for i in range(cfg.depth))
        self.downs = nn.ModuleList(ConvAct(w[i], w[i + 1], 3, stride=2, act=act) for i in range(cfg.depth))
        self.bottleneck = stage(w[-1], cfg.blocks[-1])
        self.ups = nn.ModuleList(Upsample(w[i + 1], w[i]) for i in range(cfg.depth))
        self.q_skips = nn.ModuleList(ActQuant() for _ in range(cfg.depth))
        self.decoders = nn.ModuleList(stage(w[i], cfg.blocks[i]) for i in range(cfg.depth))
        self.head = ConvAct(w[0], cfg.channels, 3, out_qparams=residual_qparams(cfg.residual_step))
        self.q_out = ActQuant(fixed=io_quantization("int8"))
        with torch.no_grad():  # start close to the identity map: the residual is small
            self.head.conv.weight.mul_(0.1)

    def _stage(self, stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpoint and self.training and torch.is_grad_enabled() and self.q_in.mode != "observe":
            return checkpoint(stage, h, use_reentrant=False)
        return stage(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.q_in(x)
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = self._stage(enc, h)
            skips.append(h)
            h = down(h)
        h = self._stage(self.bottleneck, h)
        for i in reversed(range(self.cfg.depth)):
            h = self._stage(self.decoders[i], self.q_skips[i](self.ups[i](h) + skips[i]))
        return self.q_out(x + self.head(h))


def build_restorer(cfg: RestorerConfig | str) -> Restorer:
    """A freshly initialised restorer from a config or a preset name."""
    return Restorer(preset(cfg) if isinstance(cfg, str) else cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(model: Restorer) -> float:
    """Multiply-accumulates per input pixel, counted from the convolutions actually run."""
    total = 0
    hooks: list[Callable] = []

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
        total += out.numel() * k

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(hook))
    side = 8 * model.cfg.size_multiple
    with torch.no_grad():
        model(torch.zeros(1, model.cfg.channels, side, side))
    for h in hooks:
        h.remove()
    return total / (side * side)


def summary_table() -> str:
    """Parameters and MACs per pixel of every preset, as a text table."""
    width = max(len("preset"), *map(len, PRESETS)) + 2
    rows = [f"{'preset':<{width}}{'params':>10}{'MACs/pixel':>12}{'size multiple':>15}"]
    for name, cfg in PRESETS.items():
        model = Restorer(cfg)
        rows.append(f"{name:<{width}}{count_parameters(model):>10,}{macs_per_pixel(model):>12,.0f}{cfg.size_multiple:>15}")
    return "\n".join(rows)
