"""Multi-level ROIAlign as one gather over channels-last pyramid rows (CPU inference of the FPN heads).

torchvision's CPU `roi_align` walks every channel plane of every bin in one thread, once per pyramid level, and
the pooled levels are then scattered into one output. Here the levels' features are laid out once per batch as
rows of one (sum_l N * H_l * W_l, C) table (`PyramidTable`, shared by the cascade's three box poolings and the
mask pooling), and every output bin of every ROI is one bag of one `F.embedding_bag` call over that table: the
distinct bilinear corners of its sample points (samples are at most a pixel apart, so (gy + 1)(gx + 1) points
rather than 4 gy gx), each weighted by the sum of its samples' bilinear weights over the sample count:
torchvision's result up to float rounding, computed over all channels at once and in parallel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.layers.roi_align_nhwc import sample_axis, sample_grids

__all__ = ["PyramidTable", "roi_align_levels"]


class PyramidTable:
    """Channels-last rows of pyramid levels: `table` (sum_l N * H_l * W_l, C), level l's rows from `starts[l]`
    in (image, y, x) order. Made from `features` ((N, C, H_l, W_l) each, fine to coarse); `matches` says
    whether it still holds those very tensors, unchanged since (same objects, same in-place versions)."""

    def __init__(self, features: list[torch.Tensor]) -> None:
        n, c = features[0].shape[:2]
        self.shapes = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        sizes = [n * h * w for h, w in self.shapes]
        self.starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self.table = features[0].new_empty((sum(sizes), c))
        for f, start, size, (h, w) in zip(features, self.starts, sizes, self.shapes):
            self.table[start : start + size].view(n, h, w, c).copy_(f.permute(0, 2, 3, 1))
        self._features = list(features)
        self._versions = [f._version for f in features]

    def matches(self, features: list[torch.Tensor]) -> bool:
        return (len(features) == len(self._features)
                and all(a is b and a._version == v for a, b, v in zip(features, self._features, self._versions)))


def _merge_axis(low: torch.Tensor, high: torch.Tensor, weight_low: torch.Tensor, weight_high: torch.Tensor,
                size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One axis of a group's bins, (R, B, g) sample corners and weights -> (R, B, K) distinct feature rows
    (K consecutive indices from the bin's first corner, clamped to the map) and their summed weights.
    Samples sit at most one pixel apart (g = ceil(bin extent)), so K is g + 1 (g + 2 at float ties): a
    bin reads (gy + 1)(gx + 1) points instead of 4 gy gx corners."""
    first = low[..., :1]
    span = int((high - first).max()) + 1
    weights = low.new_zeros(low.shape[:2] + (span,), dtype=weight_low.dtype)
    weights.scatter_add_(2, low - first, weight_low)
    weights.scatter_add_(2, high - first, weight_high)
    rows = (first + torch.arange(span)).clamp_(max=size - 1)  # past the map: zero weight, any valid row
    return rows, weights


def _bags(table: PyramidTable, rois: torch.Tensor, level: int, scale: float, grid: tuple[int, int], pooled: int,
          aligned: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(rows, weights, Ky * Kx), the first two (R * S * S * Ky * Kx,): the bags of `rois` (R, 5) of one level
    and one sample grid (gy, gx), bin by bin (row-major): the distinct bilinear corners of the bin's samples,
    weights summed over the samples that read them and divided by the sample count."""
    height, width = table.shapes[level]
    offset = 0.5 if aligned else 0.0
    # torchvision: roi * spatial_scale (double) - offset, rounded to float32
    x1, y1, x2, y2 = ((rois[:, i].double() * scale - offset).float() for i in range(1, 5))
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)
    bins = torch.arange(pooled, dtype=torch.float32)
    rows_y, wy = _merge_axis(*sample_axis(y1, h, bins, grid[0], pooled, height), height)
    rows_x, wx = _merge_axis(*sample_axis(x1, w, bins, grid[1], pooled, width), width)
    base = rois[:, 0].to(torch.int64).view(-1, 1, 1, 1, 1) * (height * width) + table.starts[level]
    rows = rows_y[:, :, None, :, None] * width + rows_x[:, None, :, None, :] + base
    weights = wy[:, :, None, :, None] * wx[:, None, :, None, :] / (grid[0] * grid[1])
    return rows.reshape(-1), weights.reshape(-1), rows_y.shape[-1] * rows_x.shape[-1]


def roi_align_levels(table: PyramidTable, rois: torch.Tensor, levels: torch.Tensor, scales: list[float],
                     output_size: int, sampling_ratio: int = 0, aligned: bool = True) -> torch.Tensor:
    """For each ROI, torchvision `roi_align` of its level: (R, C, S, S) contiguous, S = `output_size`.

    rois: (R, 5) (image index, x1, y1, x2, y2) in input pixels; levels: (R,) int64 index into `scales`
    (1 / stride of each of the table's levels). Sample points per bin: `sampling_ratio`, or ceil(bin extent)
    per axis when 0 (per ROI, as torchvision). Reads the sample counts back to the host (CPU use).
    """
    r, c = rois.shape[0], table.table.shape[1]
    s = output_size
    if r == 0:
        return table.table.new_zeros((0, c, s, s))
    rois = rois.to(torch.float32)
    scale = torch.tensor(scales, dtype=torch.float64)[levels]
    starts = (rois[:, 1:3].double() * scale[:, None] - (0.5 if aligned else 0.0)).float()
    _, grids = sample_grids(
        ((rois[:, 3:5].double() * scale[:, None] - (0.5 if aligned else 0.0)).float() - starts).flip(1),
        output_size=s, sampling_ratio=sampling_ratio, aligned=aligned)
    keys = torch.stack((levels.to(torch.int64), grids[:, 0], grids[:, 1]), 1)
    groups, group_of, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    order = torch.argsort(group_of, stable=True)  # ROIs group by group
    rows, weights, bag_sizes = [], [], []
    for (level, gy, gx), index in zip(groups.tolist(), order.split(counts.tolist())):
        size = 0  # an empty ROI extent has no sample points: zeros, as torchvision
        if gy and gx:
            part_rows, part_weights, size = _bags(table, rois[index], level, scales[level], (gy, gx), s, aligned)
            rows.append(part_rows)
            weights.append(part_weights)
        bag_sizes.append(torch.full((len(index),), size, dtype=torch.int64))
    if not rows:
        return table.table.new_zeros((r, c, s, s))
    # the bags ROI by ROI: each ROI's S * S bags (Ky * Kx entries each) are one block of the group-order arrays
    bag = torch.zeros(r, dtype=torch.int64)
    bag[order] = torch.cat(bag_sizes)
    block = bag * (s * s)
    block_start = torch.empty_like(block)
    block_start[order] = torch.cumsum(block[order], 0) - block[order]
    entry = torch.repeat_interleave(block_start - (torch.cumsum(block, 0) - block), block) + torch.arange(
        int(block.sum()))
    sizes = bag.repeat_interleave(s * s)
    pooled = F.embedding_bag(torch.cat(rows)[entry], table.table, torch.cumsum(sizes, 0) - sizes, mode="sum",
                             per_sample_weights=torch.cat(weights)[entry])
    return pooled.view(r, s, s, c).permute(0, 3, 1, 2).contiguous()
