"""CenterNet head: shared conv towers over p3-p7 giving heatmaps and ltrb box distances."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Scale(nn.Module):
    """A learned scalar multiplier (one per pyramid level)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tower(num_convs: int, channels: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True))
        if norm == "GN":
            layers.append(nn.GroupNorm(32 if channels % 32 == 0 else 25, channels))
        elif norm:
            raise ValueError(f"CenterNet head: unsupported norm {norm!r} (use GN or empty)")
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class CenterNetHead(nn.Module):
    """Per level: `agn_hm` (1-channel agnostic heatmap logits) and relu(scale * bbox_pred) ltrb in stride units.

    With `only_proposal` the class towers/logits are absent (Detic's proposal network).
    """

    # Not Winograd (layers/fast_conv.py): the ltrb outputs are multiplied by the stride (8-128 px), so any
    # rounding change in the tower moves proposal boxes by ~3e-4 px, enough to flip a mask pixel of a Swin-B
    # case under the strict rule; the tower keeps the original's oneDNN kernel (benchmarks/README.md).
    winograd_convolutions = False

    def __init__(self, *, in_channels: int, num_levels: int, num_classes: int, num_cls_convs: int = 4,
                 num_box_convs: int = 4, num_share_convs: int = 0, norm: str = "GN", with_agn_hm: bool = True,
                 only_proposal: bool = True, prior_prob: float = 0.01) -> None:
        super().__init__()
        self.with_agn_hm = with_agn_hm
        self.only_proposal = only_proposal
        self.cls_tower = _tower(0 if only_proposal else num_cls_convs, in_channels, norm)
        self.bbox_tower = _tower(num_box_convs, in_channels, norm)
        self.share_tower = _tower(num_share_convs, in_channels, norm)
        self.bbox_pred = nn.Conv2d(in_channels, 4, kernel_size=3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])
        for tower in (self.cls_tower, self.bbox_tower, self.share_tower, self.bbox_pred):
            for m in tower.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.normal_(m.weight, std=0.01)
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.bbox_pred.bias, 8.0)
        bias = -math.log((1 - prior_prob) / prior_prob)
        if with_agn_hm:
            self.agn_hm = nn.Conv2d(in_channels, 1, kernel_size=3, padding=1)
            nn.init.normal_(self.agn_hm.weight, std=0.01)
            nn.init.constant_(self.agn_hm.bias, bias)
        if not only_proposal:
            self.cls_logits = nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=1)
            nn.init.normal_(self.cls_logits.weight, std=0.01)
            nn.init.constant_(self.cls_logits.bias, bias)

    def forward(self, features: list[torch.Tensor]):
        """Returns per level: class logits (B, C, H, W) or None, ltrb (B, 4, H, W) >= 0, agnostic logits or None."""
        cls_logits, box_reg, agn_hms = [], [], []
        for level, feature in enumerate(features):
            feature = self.share_tower(feature)
            box_feature = self.bbox_tower(feature)
            cls_logits.append(None if self.only_proposal else self.cls_logits(self.cls_tower(feature)))
            agn_hms.append(self.agn_hm(box_feature) if self.with_agn_hm else None)
            box_reg.append(F.relu(self.scales[level](self.bbox_pred(box_feature))))
        return cls_logits, box_reg, agn_hms
