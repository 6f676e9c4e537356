"""Feature pyramid (detectron2 layout): lateral 1x1 + output 3x3 convs per level, P6/P7 from P5."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.modeling.backbone.base import Backbone


class LastLevelP6P7(nn.Module):
    """p6 = conv3x3/2(p5); p7 = conv3x3/2(relu(p6)) (CenterNet2's P6P7 on P5)."""

    in_feature = "p5"
    num_levels = 2

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for conv in (self.p6, self.p7):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, p5: torch.Tensor) -> list[torch.Tensor]:
        p6 = self.p6(p5)
        return [p6, self.p7(F.relu(p6))]


class FPN(Backbone):
    """Top-down pyramid over `bottom_up` features `in_features` (fine to coarse).

    Outputs `p{log2(stride)}` maps with `out_channels` channels, plus p6/p7 from the top block.
    Keys: `bottom_up.*`, `fpn_lateral{s}`, `fpn_output{s}`, `top_block.p6/p7`.
    """

    def __init__(self, *, bottom_up: Backbone, in_features: list[str], out_channels: int = 256,
                 top_block: LastLevelP6P7 | None = None, fuse_type: str = "sum") -> None:
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be sum or avg, got {fuse_type}")
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.fuse_type = fuse_type
        strides = [bottom_up.out_strides[f] for f in self.in_features]
        self._stages = [int(math.log2(s)) for s in strides]
        for name, stage in zip(self.in_features, self._stages):
            lateral = nn.Conv2d(bottom_up.out_channels[name], out_channels, 1)
            output = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
            for conv in (lateral, output):
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)
            self.add_module(f"fpn_lateral{stage}", lateral)
            self.add_module(f"fpn_output{stage}", output)
        self.top_block = top_block
        levels = list(self._stages)
        if top_block is not None:
            levels += [levels[-1] + i + 1 for i in range(top_block.num_levels)]
        self.out_features = [f"p{s}" for s in levels]
        self.out_channels = {f: out_channels for f in self.out_features}
        self.out_strides = {f"p{s}": 2**s for s in levels}
        self.size_divisibility = strides[-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        bottom = self.bottom_up(x)
        outputs: list[torch.Tensor] = []
        prev: torch.Tensor | None = None
        for name, stage in reversed(list(zip(self.in_features, self._stages))):
            lateral = getattr(self, f"fpn_lateral{stage}")(bottom[name])
            if prev is not None:
                lateral = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
                if self.fuse_type == "avg":
                    lateral = lateral / 2
            prev = lateral
            outputs.insert(0, getattr(self, f"fpn_output{stage}")(prev))
        if self.top_block is not None:
            p5 = outputs[self.out_features.index(self.top_block.in_feature)]
            outputs.extend(self.top_block(p5))
        return dict(zip(self.out_features, outputs))
