"""The transformer-style feed-forward block shared by Swin and ConvNeXt."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """Linear (`fc1`) -> exact GELU -> Linear (`fc2`) over the last dim (channels-last): (..., dim) -> same."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
