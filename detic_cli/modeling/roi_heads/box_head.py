"""FastRCNNConvFCHead: optional 3x3 convs then fully connected layers on pooled box features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FastRCNNConvFCHead(nn.Module):
    """(N, C, S, S) pooled features -> (N, fc_dim) with `num_fc` ReLU'd linear layers (`fc1`, `fc2`, ...)."""

    def __init__(self, *, in_channels: int, resolution: int, num_conv: int = 0, conv_dim: int = 256,
                 num_fc: int = 2, fc_dim: int = 1024) -> None:
        super().__init__()
        if num_conv:
            raise ValueError("FastRCNNConvFCHead: NUM_CONV > 0 is not used by any Detic config")
        self.fcs = []
        size = in_channels * resolution * resolution
        for k in range(num_fc):
            fc = nn.Linear(size, fc_dim)
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
            self.add_module(f"fc{k + 1}", fc)
            self.fcs.append(fc)
            size = fc_dim
        self.output_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, start_dim=1)
        for fc in self.fcs:
            x = F.relu(fc(x))
        return x
