"""Stochastic depth for the residual branches of transformer/ConvNeXt blocks."""

from __future__ import annotations

import torch


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (batch dim 0); identity at inference or when rate is 0."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep
