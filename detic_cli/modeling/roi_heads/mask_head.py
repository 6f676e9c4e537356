"""MaskRCNNConvUpsampleHead: 3x3 convs, a 2x deconvolution and a 1x1 predictor per (agnostic) class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.structures import Instances


class MaskRCNNConvUpsampleHead(nn.Module):
    """(N, C, S, S) pooled features -> (N, num_mask_classes, 2S, 2S) mask logits."""

    def __init__(self, *, in_channels: int, num_conv: int = 4, conv_dim: int = 256,
                 num_mask_classes: int = 1) -> None:
        super().__init__()
        self.convs = []
        channels = in_channels
        for k in range(num_conv):
            conv = nn.Conv2d(channels, conv_dim, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.add_module(f"mask_fcn{k + 1}", conv)
            self.convs.append(conv)
            channels = conv_dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dim, kernel_size=2, stride=2)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        self.predictor = nn.Conv2d(conv_dim, num_mask_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.predictor(F.relu(self.deconv(x)))


def mask_rcnn_inference(mask_logits: torch.Tensor, instances: list[Instances]) -> None:
    """Set `pred_masks` (R_i, 1, M, M) probabilities in [0, 1] on each image's instances.

    Class-agnostic logits use channel 0; class-specific ones the channel of `pred_classes`.
    """
    if mask_logits.shape[1] == 1:
        probs = mask_logits.sigmoid()
    else:
        classes = torch.cat([i.pred_classes for i in instances])
        probs = mask_logits[torch.arange(len(classes), device=classes.device), classes][:, None].sigmoid()
    for inst, p in zip(instances, probs.split([len(i) for i in instances])):
        inst.pred_masks = p
