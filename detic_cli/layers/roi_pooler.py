"""Multi-level ROIAlign: each box is pooled from the pyramid level its size maps to (FPN paper, eq. 1)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import roi_align

from detic_cli.structures import Boxes


def assign_boxes_to_levels(boxes: list[Boxes], min_level: int, max_level: int, canonical_box_size: int = 224,
                           canonical_level: int = 4) -> torch.Tensor:
    """(N,) level index in [0, max_level - min_level] for all boxes of all images, in order."""
    sizes = torch.sqrt(torch.cat([b.area() for b in boxes]))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size + 1e-8))
    return levels.clamp(min=min_level, max=max_level).to(torch.int64) - min_level


class ROIPooler(nn.Module):
    """ROIAlign (aligned=True, detectron2's ROIAlignV2) of `output_size` x `output_size` cells.

    `scales` are 1 / stride of the input feature maps (fine to coarse); `sampling_ratio` 0 = adaptive.
    """

    def __init__(self, *, output_size: int, scales: list[float], sampling_ratio: int = 0,
                 aligned: bool = True) -> None:
        super().__init__()
        self.output_size = (output_size, output_size)
        self.scales = list(scales)
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.min_level = int(-math.log2(scales[0]))
        self.max_level = int(-math.log2(scales[-1]))

    def forward(self, features: list[torch.Tensor], boxes: list[Boxes]) -> torch.Tensor:
        """(sum N_i, C, S, S) pooled features for the boxes of every image (XYXY, input pixels)."""
        rois = torch.cat([torch.cat((torch.full((len(b), 1), i, dtype=b.tensor.dtype, device=b.device),
                                     b.tensor), dim=1) for i, b in enumerate(boxes)])
        if len(features) == 1:
            return roi_align(features[0], rois, self.output_size, self.scales[0], self.sampling_ratio,
                             self.aligned)
        levels = assign_boxes_to_levels(boxes, self.min_level, self.max_level)
        channels = features[0].shape[1]
        out = features[0].new_zeros((len(rois), channels) + self.output_size)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = (levels == level).nonzero().squeeze(1)
            if index.numel():
                out[index] = roi_align(feature, rois[index], self.output_size, scale, self.sampling_ratio,
                                       self.aligned).to(out.dtype)
        return out
