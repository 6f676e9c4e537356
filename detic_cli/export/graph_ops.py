"""Graph building blocks shared by the exported families: box clipping, multi-level ROI pooling, a dynamic top-k.

Each takes one image's tensors and keeps every size a traced tensor (no Python int of a shape), so the
graph follows the input's size.
"""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from detic_cli.layers.roi_pooler import ROIPooler, assign_boxes_to_levels
from detic_cli.structures import Boxes


def clip_boxes(boxes: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """(N, 4) XYXY clamped to [0, width] x [0, height] (sizes as 0-dim tensors, so they stay dynamic)."""
    x = boxes[:, 0::2].clamp(min=0)
    y = boxes[:, 1::2].clamp(min=0)
    x = torch.minimum(x, width.to(boxes.dtype))
    y = torch.minimum(y, height.to(boxes.dtype))
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def pool_boxes(pooler: ROIPooler, features: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
    """ROIPooler.forward for one image's (R, 4) boxes: each box pooled from its FPN level."""
    rois = torch.cat((torch.zeros_like(boxes[:, :1]), boxes), dim=1)
    if len(features) == 1:
        return roi_align(features[0], rois, pooler.output_size, pooler.scales[0], pooler.sampling_ratio,
                         pooler.aligned)
    levels = assign_boxes_to_levels([Boxes(boxes)], pooler.min_level, pooler.max_level)
    pooled, order = [], []
    for level, (feature, scale) in enumerate(zip(features, pooler.scales)):
        index = (levels == level).nonzero()[:, 0]
        pooled.append(roi_align(feature, rois[index], pooler.output_size, scale, pooler.sampling_ratio,
                                pooler.aligned))
        order.append(index)
    # rows grouped by level -> back to box order: the inverse of the concatenated permutation
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(pooled)[inverse]


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The min(k, len) best of a 1-D tensor, sorted, with a count that stays dynamic in the graph."""
    count = torch.clamp(torch.tensor(scores.shape[0], dtype=torch.int64), max=k)
    return torch.topk(scores, count)  # type: ignore[arg-type]
