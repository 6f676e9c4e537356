"""ROIAlign as gathers of channel rows (CPU inference of the C4 heads), with an output-bin stride.

torchvision's CPU `roi_align` walks every channel plane of every bin in one thread. Here each output bin is
one `F.embedding_bag` over rows of the (N * H * W, C) channels-last feature table: its bilinear corners
(4 per sample point, weighted) are summed, then divided by the sample count, so the result is torchvision's
up to float summation order, already channels-last, computed in parallel. `bin_step` > 1 computes only
every `bin_step`-th bin of each axis: the C4 heads' res5 starts with stride-2 1x1 convolutions that read
only the even bins of the 14 x 14 pooled grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["roi_align_nhwc", "sample_axis"]


def sample_axis(start: torch.Tensor, length: torch.Tensor, bins: torch.Tensor, grid: int | torch.Tensor,
                pooled: int, size: int | torch.Tensor):
    """Per ROI, per kept bin, per sample along one axis: (low, high, weight_low, weight_high), each
    (R, B, G), computed in float32 in torchvision's order (zero weights for samples outside [-1, size]).

    grid: samples per bin, one count (G = grid) or per ROI (R,) int64 >= 1 (G = their max; a ROI's samples
    past its own count get zero weights and its first sample's corners); size: the axis' feature length, one
    or per ROI (R,) int64.
    """
    per_roi = isinstance(grid, torch.Tensor)
    count = int(grid.max()) if per_roi else grid
    divisor = grid.to(torch.float32).view(-1, 1, 1) if per_roi else grid
    size = size.view(-1, 1, 1) if isinstance(size, torch.Tensor) else size
    bin_size = length / pooled
    index = torch.arange(count, dtype=torch.float32).view(1, 1, -1)
    pos = (start.view(-1, 1, 1) + bins.view(1, -1, 1) * bin_size.view(-1, 1, 1)
           + (index + 0.5) * bin_size.view(-1, 1, 1) / divisor)
    inside = (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = pos.to(torch.int64)
    last = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(last, low, low + 1)
    pos = torch.where(last, low.to(pos.dtype), pos)
    frac = pos - low
    if per_roi:
        real = index < divisor
        inside &= real
        low = torch.where(real, low, low[..., :1])
        high = torch.where(real, high, low[..., :1])
    return low, high, (1 - frac) * inside, frac * inside


def sample_grids(lengths: torch.Tensor, *, output_size: int, sampling_ratio: int,
                 aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, 2) ROI extents (h, w) in feature pixels -> (extents, (R, 2) int64 samples per bin and axis), as
    torchvision's ROIAlign: legacy (not `aligned`) extents are at least 1 px; `sampling_ratio` > 0 fixes the
    count, 0 makes it ceil(extent / output_size) per ROI (ROIAlignV2's adaptive sampling)."""
    if not aligned:
        lengths = lengths.clamp(min=1.0)
    if sampling_ratio > 0:
        return lengths, torch.full(lengths.shape, sampling_ratio, dtype=torch.int64)
    return lengths, torch.ceil(lengths / output_size).to(torch.int64).clamp(min=0)


def _group(table: torch.Tensor, rois: torch.Tensor, shape: tuple[int, int], scale: float, offset: float,
           grid: tuple[int, int], bins: torch.Tensor, pooled: int, aligned: bool) -> torch.Tensor:
    """(R, B, B, C) pooled bins of `rois` that all have `grid` = (samples along y, along x) per bin."""
    height, width = shape
    x1, y1, x2, y2 = (rois[:, i] * scale - offset for i in range(1, 5))
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)
    ylow, yhigh, wylow, wyhigh = sample_axis(y1, h, bins, grid[0], pooled, height)
    xlow, xhigh, wxlow, wxhigh = sample_axis(x1, w, bins, grid[1], pooled, width)
    image = rois[:, 0].to(torch.int64).view(-1, 1, 1, 1, 1) * (height * width)
    # (R, By, Bx, gy, gx) for each corner: rows y * W + x, weights wy * wx
    rows_y = torch.stack((ylow, ylow, yhigh, yhigh), -1)[:, :, None, :, None] * width
    rows_x = torch.stack((xlow, xhigh, xlow, xhigh), -1)[:, None, :, None, :]
    wy = torch.stack((wylow, wylow, wyhigh, wyhigh), -1)[:, :, None, :, None]
    wx = torch.stack((wxlow, wxhigh, wxlow, wxhigh), -1)[:, None, :, None, :]
    rows = rows_y + rows_x + image.unsqueeze(-1)
    weights = wy * wx
    r, b = rois.shape[0], bins.numel()
    out = F.embedding_bag(rows.reshape(r * b * b, -1), table, mode="sum",
                          per_sample_weights=weights.reshape(r * b * b, -1))
    return out.div_(max(grid[0] * grid[1], 1)).view(r, b, b, -1)


def roi_align_nhwc(features: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float,
                   sampling_ratio: int = 0, aligned: bool = True, bin_step: int = 1) -> torch.Tensor:
    """torchvision `roi_align(features, rois, output_size, ...)[:, :, ::bin_step, ::bin_step]`, channels-last.

    features: (N, C, H, W) float; rois: (R, 5) (image index, x1, y1, x2, y2) in input pixels. Sample points per
    bin: `sampling_ratio`, or ceil(bin extent) per axis when 0 (per ROI, as torchvision). Returns
    (R, ceil(output_size / bin_step), same, C). Reads the sample counts back to the host (CPU use).
    """
    n, c, height, width = features.shape
    table = features.permute(0, 2, 3, 1).reshape(n * height * width, c)
    bins = torch.arange(0, output_size, bin_step, dtype=torch.float32)
    b = bins.numel()
    offset = 0.5 if aligned else 0.0
    out = features.new_empty((rois.shape[0], b, b, c))
    if rois.shape[0] == 0:
        return out
    rois = rois.to(torch.float32)
    start = rois[:, 1:3] * spatial_scale - offset  # (x, y), as torchvision rounds them
    lengths, grids = sample_grids((rois[:, 3:5] * spatial_scale - offset - start).flip(1),  # (h, w)
                                  output_size=output_size, sampling_ratio=sampling_ratio, aligned=aligned)
    for key in torch.unique(grids, dim=0).tolist():
        index = (grids == torch.tensor(key)).all(1).nonzero().squeeze(1)
        if key[0] == 0 or key[1] == 0:
            out[index] = 0  # an empty ROI extent has no sample points: zeros, as torchvision
            continue
        out[index] = _group(table, rois[index], (height, width), spatial_scale, offset, (key[0], key[1]), bins,
                            output_size, aligned).to(out.dtype)
    return out

