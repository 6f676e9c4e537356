"""The contract every backbone follows, so FPN, proposal generators and ROI heads can consume it."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Maps a normalised (B, 3, H, W) batch to named feature maps.

    Subclasses set `out_features` (names, fine to coarse), `out_channels[name]` and
    `out_strides[name]` (input pixels per feature cell), and `size_divisibility`
    (input sides must be padded to a multiple of it; 0 = no constraint).
    """

    out_features: list[str]
    out_channels: dict[str, int]
    out_strides: dict[str, int]
    size_divisibility: int = 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError
