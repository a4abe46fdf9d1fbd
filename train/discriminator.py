"""A patch discriminator for adversarial fine-tuning (`python -m train --gan`).

PatchGAN-style: strided 3x3/4x4 convolutions with spectral normalisation (a 1-Lipschitz bound per
layer that keeps the adversarial game stable without tuning) and LeakyReLU, ending in a 1-channel
map whose every value judges one receptive-field patch (~70 px with the defaults). It never ships:
only the generator (the restorer) goes through QAT and export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass(frozen=True)
class DiscriminatorConfig:
    channels: int = 3
    width: int = 64  # channels of the first layer; doubled at each stride-2 stage up to 8x
    stages: int = 3  # stride-2 stages: more widens each judged patch
    spectral_norm: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    """Maps an image batch (N, C, H, W) in [0, 1] to patch logits (N, 1, ~H/2^stages, ~W/2^stages)."""

    def __init__(self, cfg: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        wrap = spectral_norm if cfg.spectral_norm else (lambda m: m)
        layers = [nn.Sequential(wrap(nn.Conv2d(cfg.channels, cfg.width, 3, 1, 1)), nn.LeakyReLU(0.2))]
        c = cfg.width
        for i in range(cfg.stages):
            out = min(cfg.width * 2 ** (i + 1), cfg.width * 8)
            layers.append(nn.Sequential(wrap(nn.Conv2d(c, out, 4, 2, 1)), nn.LeakyReLU(0.2),
                                        wrap(nn.Conv2d(out, out, 3, 1, 1)), nn.LeakyReLU(0.2)))
            c = out
        self.features = nn.ModuleList(layers)
        self.head = wrap(nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor, with_features: bool = False):
        """Patch logits; with `with_features`, also every stage's activations (for feature matching)."""
        h = x * 2 - 1  # centred input: the restorer works in [0, 1]
        feats = []
        for layer in self.features:
            h = layer(h)
            feats.append(h)
        logits = self.head(h)
        return (logits, feats) if with_features else logits
