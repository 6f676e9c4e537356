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
                size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of the bins, (R, B, G) sample corners and weights -> (R, B, K) distinct feature rows (K
    consecutive indices from the bin's first corner, clamped to the map, `size` (R,) its length per ROI),
    their summed weights, and (R,) how many of the K each ROI needs. Samples sit at most one pixel apart
    (G = ceil(bin extent)), so a ROI needs g + 1 (g + 2 at float ties): a bin reads (gy + 1)(gx + 1) points
    instead of 4 gy gx corners."""
    first = low[..., :1]
    reach = (high - first).amax(dim=(1, 2)) + 1
    span = int(reach.max())
    weights = low.new_zeros(low.shape[:2] + (span,), dtype=weight_low.dtype)
    weights.scatter_add_(2, low - first, weight_low)
    weights.scatter_add_(2, high - first, weight_high)
    rows = torch.minimum(first + torch.arange(span), size.view(-1, 1, 1) - 1)  # past the map: zero weight
    return rows, weights, reach


def roi_align_levels(table: PyramidTable, rois: torch.Tensor, levels: torch.Tensor, scales: list[float],
                     output_size: int, sampling_ratio: int = 0, aligned: bool = True) -> torch.Tensor:
    """For each ROI, torchvision `roi_align` of its level: (R, C, S, S) contiguous, S = `output_size`.

    rois: (R, 5) (image index, x1, y1, x2, y2) in input pixels; levels: (R,) int64 index into `scales`
    (1 / stride of each of the table's levels). Sample points per bin: `sampling_ratio`, or ceil(bin extent)
    per axis when 0 (per ROI, as torchvision). Every bin of every ROI is one bag of one `embedding_bag`, in
    ROI order. Reads sizes back to the host (CPU use).
    """
    r, c = rois.shape[0], table.table.shape[1]
    s = output_size
    if r == 0:
        return table.table.new_zeros((0, c, s, s))
    rois = rois.to(torch.float32)
    # torchvision: roi * spatial_scale (double) - offset, rounded to float32
    scale = torch.tensor(scales, dtype=torch.float64)[levels]
    x1, y1, x2, y2 = ((rois[:, i].double() * scale - (0.5 if aligned else 0.0)).float() for i in range(1, 5))
    lengths, grids = sample_grids(torch.stack((y2 - y1, x2 - x1), 1), output_size=s,
                                  sampling_ratio=sampling_ratio, aligned=aligned)
    live = (grids > 0).all(1)  # an empty ROI extent has no sample points: zeros, as torchvision
    if not bool(live.any()):
        return table.table.new_zeros((r, c, s, s))
    rows, weights, sizes = _bags(table, rois[:, 0].to(torch.int64), levels, (y1, x1), lengths, grids, live, s)
    pooled = F.embedding_bag(rows, table.table, torch.cumsum(sizes, 0) - sizes, mode="sum",
                             per_sample_weights=weights)
    return pooled.view(r, s, s, c).permute(0, 3, 1, 2).contiguous()


def _bags(table: PyramidTable, images: torch.Tensor, levels: torch.Tensor, starts: tuple[torch.Tensor, torch.Tensor],
          lengths: torch.Tensor, grids: torch.Tensor, live: torch.Tensor,
          pooled: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, weights, sizes): the bags of every bin of every ROI, bin by bin (ROI, then row-major), each
    the distinct bilinear corners of the bin's samples (Ky x Kx, the ROI's own counts; none for ROIs not
    `live`), weights summed over the samples that read them and divided by the sample count; `sizes`
    (R * S * S,) entries per bag. images, levels, live: (R,); starts (y1, x1): (R,) each, in feature
    pixels of the ROI's level; lengths (R, 2) (h, w); grids (R, 2) samples per bin and axis."""
    heights, widths = torch.tensor(table.shapes, dtype=torch.int64)[levels].unbind(1)
    grids = torch.where(live[:, None], grids, 1)  # ROIs without samples: one, not sizing the others' tensors
    bins = torch.arange(pooled, dtype=torch.float32)
    rows_y, wy, ky = _merge_axis(*sample_axis(starts[0], lengths[:, 0], bins, grids[:, 0], pooled, heights), heights)
    rows_x, wx, kx = _merge_axis(*sample_axis(starts[1], lengths[:, 1], bins, grids[:, 1], pooled, widths), widths)
    base = images * (heights * widths) + torch.tensor(table.starts, dtype=torch.int64)[levels]
    rows = (rows_y[:, :, None, :, None] * widths.view(-1, 1, 1, 1, 1) + rows_x[:, None, :, None, :]
            + base.view(-1, 1, 1, 1, 1))
    weights = wy[:, :, None, :, None] * wx[:, None, :, None, :] / grids.prod(1).to(torch.float32).view(-1, 1, 1, 1, 1)
    ky, kx = ky * live, kx * live
    keep = ((torch.arange(rows_y.shape[-1]).view(1, 1, 1, -1, 1) < ky.view(-1, 1, 1, 1, 1))
            & (torch.arange(rows_x.shape[-1]).view(1, 1, 1, 1, -1) < kx.view(-1, 1, 1, 1, 1)))
    entries = keep.expand(rows.shape).reshape(-1).nonzero().squeeze(1)
    return rows.reshape(-1)[entries], weights.reshape(-1)[entries], (ky * kx).repeat_interleave(pooled * pooled)
