"""Training losses: Charbonnier (robust L1) and an optional frequency term for deblurring."""

from __future__ import annotations

import torch


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Smooth L1-like loss, sqrt(d^2 + eps^2), averaged."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def frequency_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between 2-D FFT magnitudes: penalises lost high frequencies that pixel losses forgive."""
    return (torch.fft.rfft2(pred, norm="ortho") - torch.fft.rfft2(target, norm="ortho")).abs().mean()


def restoration_loss(pred: torch.Tensor, target: torch.Tensor, freq_weight: float = 0.0) -> torch.Tensor:
    """Charbonnier plus `freq_weight` times the frequency loss."""
    loss = charbonnier(pred, target)
    if freq_weight > 0:
        loss = loss + freq_weight * frequency_l1(pred, target)
    return loss
