"""CenterNet2's proposal-network training targets and losses (class-agnostic heatmap + ltrb GIoU).

Targets, per image, over the locations of every level (cell centres `grids`, input pixels):
- level assignment: a box belongs to each level whose size-of-interest range [lo, hi] (inclusive)
  holds half its diagonal;
- positives: for each (box, assigned level), the cell holding the box centre (truncated centre / stride);
- heatmap: exp(-min_box d^2 / r^2), d the distance from the cell centre to the box centre (0 on the
  box's centre cell, on every level), r^2 = max(2 * delta^2 * area, min_radius^2) with
  delta = (1 - hm_min_overlap) / (1 + hm_min_overlap); values below 1e-4 become 0;
- regression: at cells inside a box, within one stride (in x and y) of its centre cell, on a level the
  box is assigned to, the ltrb distances to the box with the smallest d^2 / r^2, divided by the stride
  (the head predicts in stride units); elsewhere -INF (no regression).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from detic_cli.layers.losses import binary_heatmap_focal_loss, ltrb_iou_loss, mean_over_processes
from detic_cli.structures import Instances

__all__ = ["CenterNetLoss", "image_targets", "positive_indices"]

INF = 1e8


def _half_diagonal(boxes: torch.Tensor) -> torch.Tensor:
    return ((boxes[:, 2:] - boxes[:, :2]) ** 2).sum(dim=1).sqrt() / 2


@torch.no_grad()
def image_targets(boxes: torch.Tensor, grids: torch.Tensor, strides: torch.Tensor, size_ranges: torch.Tensor, *,
                  delta: float, min_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmap (M,) in [0, 1] and regression targets (M, 4) ltrb in stride units (-INF = none) of one image.

    boxes: (N, 4) XYXY in the padded-input frame; grids: (M, 2) xy cell centres of all levels
    concatenated; strides: (M,) each location's stride; size_ranges: (M, 2) its level's [lo, hi].
    """
    m, n = grids.shape[0], boxes.shape[0]
    if n == 0:
        return grids.new_zeros(m), grids.new_full((m, 4), -INF)
    gx, gy = grids[:, 0:1], grids[:, 1:2]
    ltrb = torch.stack((gx - boxes[:, 0], gy - boxes[:, 1], boxes[:, 2] - gx, boxes[:, 3] - gy), dim=2)  # M,N,4
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    step = strides.view(m, 1, 1)
    centre_cells = torch.trunc(centers.unsqueeze(0) / step) * step + step / 2  # M,N,2
    offset = grids.unsqueeze(1) - centre_cells
    is_peak = (offset == 0).all(dim=2)
    near_centre = (offset.abs() <= step).all(dim=2) & (ltrb.min(dim=2).values > 0)
    half_diag = _half_diagonal(boxes).unsqueeze(0)
    in_level = (half_diag >= size_ranges[:, 0:1]) & (half_diag <= size_ranges[:, 1:2])

    dist2 = ((grids.unsqueeze(1) - centers.unsqueeze(0)) ** 2).sum(dim=2)
    dist2[is_peak] = 0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    norm_dist2 = dist2 / (delta ** 2 * 2 * area).clamp(min=min_radius ** 2)

    heatmap = torch.exp(-norm_dist2.min(dim=1).values)
    heatmap[heatmap < 1e-4] = 0

    reg_mask = near_centre & in_level
    chosen = norm_dist2.masked_fill(~reg_mask, INF).argmin(dim=1)
    reg = ltrb[torch.arange(m, device=grids.device), chosen] / strides.unsqueeze(1)
    reg[~reg_mask.any(dim=1)] = -INF
    return heatmap, reg


@torch.no_grad()
def positive_indices(boxes: torch.Tensor, *, level_shapes: Sequence[tuple[int, int]], strides: Sequence[int],
                     sizes_of_interest: Sequence[Sequence[float]]) -> torch.Tensor:
    """(P,) int64 indices, into the image's locations of all levels concatenated (row-major per level), of
    the centre cell of every (box, assigned level) pair. boxes: (N, 4) XYXY in the padded-input frame."""
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    half_diag = _half_diagonal(boxes)
    out, base = [], 0
    for (h, w), stride, (lo, hi) in zip(level_shapes, strides, sizes_of_interest, strict=True):
        cells = torch.trunc(centers / stride).long()
        cx, cy = cells[:, 0].clamp(0, w - 1), cells[:, 1].clamp(0, h - 1)
        keep = (half_diag >= lo) & (half_diag <= hi)
        out.append((base + cy * w + cx)[keep])
        base += h * w
    return torch.cat(out) if out else boxes.new_zeros(0, dtype=torch.int64)


class CenterNetLoss(nn.Module):
    """CenterNet2's proposal losses with an agnostic heatmap (ONLY_PROPOSAL + WITH_AGN_HM).

    Returns `loss_centernet_loc` = reg_weight * sum(w * (1 - giou)) / max(mean_p(sum w), 1) over the
    locations with regression targets (w = 1 with `not_norm_reg`, else the heatmap target), and
    `loss_centernet_agn_pos` / `loss_centernet_agn_neg` = pos_weight / neg_weight * focal loss
    / max(mean_p(#positives), 1), where mean_p averages over processes. No parameters or buffers.
    """

    def __init__(self, *, strides: Sequence[int], sizes_of_interest: Sequence[Sequence[float]],
                 hm_min_overlap: float = 0.8, min_radius: float = 4.0, hm_focal_alpha: float = 0.25,
                 hm_focal_beta: float = 4.0, loss_gamma: float = 2.0, sigmoid_clamp: float = 1e-4,
                 ignore_high_fp: float = -1.0, pos_weight: float = 1.0, neg_weight: float = 1.0,
                 reg_weight: float = 2.0, not_norm_reg: bool = True, loc_loss_type: str = "giou") -> None:
        super().__init__()
        if len(strides) != len(sizes_of_interest):
            raise ValueError(f"{len(strides)} strides but {len(sizes_of_interest)} size-of-interest ranges")
        self.strides = [int(s) for s in strides]
        self.sizes_of_interest = [(float(lo), float(hi)) for lo, hi in sizes_of_interest]
        self.delta = (1 - hm_min_overlap) / (1 + hm_min_overlap)
        self.min_radius = float(min_radius)
        self.focal = dict(alpha=float(hm_focal_alpha), beta=float(hm_focal_beta), gamma=float(loss_gamma),
                          sigmoid_clamp=float(sigmoid_clamp), ignore_high_fp=float(ignore_high_fp))
        self.pos_weight, self.neg_weight, self.reg_weight = float(pos_weight), float(neg_weight), float(reg_weight)
        self.not_norm_reg = bool(not_norm_reg)
        self.loc_loss_type = loc_loss_type

    @torch.no_grad()
    def targets(self, grids: list[torch.Tensor], level_shapes: list[tuple[int, int]],
                gt_instances: list[Instances]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B*M,) heatmap, (B*M, 4) ltrb targets in stride units (-INF = none), (P,) positive indices,
        image-major: location j of image i is i * M + j (levels concatenated, row-major)."""
        flat_grids = torch.cat(grids).float()
        strides = torch.cat([flat_grids.new_full((len(g),), float(s)) for g, s in zip(grids, self.strides)])
        ranges = torch.cat([flat_grids.new_tensor(r).expand(len(g), 2) for g, r in zip(grids, self.sizes_of_interest)])
        m = flat_grids.shape[0]
        heatmaps, regs, pos = [], [], []
        for i, inst in enumerate(gt_instances):
            boxes = inst.gt_boxes.tensor.to(device=flat_grids.device, dtype=torch.float32)
            heatmap, reg = image_targets(boxes, flat_grids, strides, ranges, delta=self.delta,
                                         min_radius=self.min_radius)
            heatmaps.append(heatmap)
            regs.append(reg)
            pos.append(i * m + positive_indices(boxes, level_shapes=level_shapes, strides=self.strides,
                                                sizes_of_interest=self.sizes_of_interest))
        return torch.cat(heatmaps), torch.cat(regs), torch.cat(pos)

    def forward(self, *, grids: list[torch.Tensor], box_reg: list[torch.Tensor], agn_hms: list[torch.Tensor],
                gt_instances: list[Instances]) -> dict[str, torch.Tensor]:
        """grids: per level (H_l*W_l, 2) cell centres; box_reg: per level (B, 4, H_l, W_l) ltrb >= 0 in stride
        units; agn_hms: per level (B, 1, H_l, W_l) logits; gt_instances: B with `gt_boxes` (XYXY, padded input)."""
        shapes = [(int(r.shape[-2]), int(r.shape[-1])) for r in box_reg]
        heatmap, reg_target, pos_inds = self.targets(grids, shapes, gt_instances)
        batch = box_reg[0].shape[0]
        reg_pred = torch.cat([r.permute(0, 2, 3, 1).reshape(batch, -1, 4) for r in box_reg], dim=1).reshape(-1, 4)
        hm_pred = torch.cat([a.reshape(batch, -1) for a in agn_hms], dim=1).reshape(-1)

        has_reg = reg_target.max(dim=1).values >= 0
        reg_weights = heatmap[has_reg] if not self.not_norm_reg else heatmap.new_ones(int(has_reg.sum()))
        counts = mean_over_processes(torch.stack((heatmap.new_tensor(float(pos_inds.numel())), reg_weights.sum())))
        num_pos, reg_norm = counts.clamp(min=1.0).tolist()

        loc = ltrb_iou_loss(reg_pred[has_reg], reg_target[has_reg], reg_weights, loss_type=self.loc_loss_type)
        pos_loss, neg_loss = binary_heatmap_focal_loss(hm_pred, heatmap, pos_inds, **self.focal)
        return {"loss_centernet_loc": self.reg_weight * loc / reg_norm,
                "loss_centernet_agn_pos": self.pos_weight * pos_loss / num_pos,
                "loss_centernet_agn_neg": self.neg_weight * neg_loss / num_pos}
