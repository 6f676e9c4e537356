"""Multi-level ROIAlign: each box is pooled from the pyramid level its size maps to (FPN paper, eq. 1)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn
from torchvision.ops import roi_align

from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.layers.roi_align_levels import PyramidTable, roi_align_levels
from detic_cli.structures import Boxes

_POOL: ThreadPoolExecutor | None = None


def _parallel_roi_align(feature: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], scale: float,
                        sampling_ratio: int, aligned: bool) -> torch.Tensor:
    """torchvision's `roi_align`, whose CPU kernel runs on one core, split over `torch.get_num_threads()`
    threads by ROI (each ROI's result is computed alone, so the output is bit-identical). CPU inference
    only; elsewhere one call."""
    global _POOL
    parts = min(torch.get_num_threads(), len(rois) // 16)
    if parts < 2 or feature.device.type != "cpu" or torch.is_grad_enabled() or torch.jit.is_tracing():
        return roi_align(feature, rois, output_size, scale, sampling_ratio, aligned)
    if _POOL is None or _POOL._max_workers < parts:
        _POOL = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="roi_align")
    chunks = _POOL.map(lambda r: roi_align(feature, r, output_size, scale, sampling_ratio, aligned),
                       rois.chunk(parts))
    return torch.cat(list(chunks))


def pools_by_gather(feature: torch.Tensor) -> bool:
    """Whether pooling gathers from a channels-last table (`roi_align_levels` here, `roi_align_nhwc` in the C4
    head): CPU float32 inference only (it reads per-ROI sample counts back to the host, free there; CUDA keeps
    torchvision's kernel)."""
    return fast_path_allowed(feature)


def boxes_to_rois(boxes: list[Boxes]) -> torch.Tensor:
    """(sum N_i, 5) rows (image index, x1, y1, x2, y2) of every image's XYXY boxes, as roi_align takes them."""
    return torch.cat([torch.cat((torch.full((len(b), 1), i, dtype=b.tensor.dtype, device=b.device), b.tensor), dim=1)
                      for i, b in enumerate(boxes)])


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

    def table(self, features: list[torch.Tensor]) -> PyramidTable | None:
        """The channels-last rows `forward` gathers from on the CPU fast path (see roi_align_levels.py), made
        once and passed to every pooling of the same `features`; None where the fast path does not apply."""
        return PyramidTable(features) if pools_by_gather(features[0]) else None

    def forward(self, features: list[torch.Tensor], boxes: list[Boxes],
                table: PyramidTable | None = None) -> torch.Tensor:
        """(sum N_i, C, S, S) pooled features for the boxes of every image (XYXY, input pixels).

        CPU float32 inference gathers from `table` (`self.table(features)`, made here when not given or made
        from other tensors); equal to torchvision's `roi_align` up to float summation order.
        """
        rois = boxes_to_rois(boxes)
        if pools_by_gather(features[0]) and not any(b.tensor.requires_grad for b in boxes):
            if table is None or not table.matches(features):
                table = PyramidTable(features)
            levels = (assign_boxes_to_levels(boxes, self.min_level, self.max_level) if len(features) > 1
                      else torch.zeros(len(rois), dtype=torch.int64))
            return roi_align_levels(table, rois, levels, self.scales, self.output_size[0], self.sampling_ratio,
                                    self.aligned)
        if len(features) == 1:
            return _parallel_roi_align(features[0], rois, self.output_size, self.scales[0], self.sampling_ratio,
                                       self.aligned)
        levels = assign_boxes_to_levels(boxes, self.min_level, self.max_level)
        channels = features[0].shape[1]
        out = features[0].new_zeros((len(rois), channels) + self.output_size)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = (levels == level).nonzero().squeeze(1)
            if index.numel():
                out[index] = _parallel_roi_align(feature, rois[index], self.output_size, scale,
                                                 self.sampling_ratio, self.aligned).to(out.dtype)
        return out
