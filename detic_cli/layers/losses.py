"""Generic detection losses: the CornerNet/CenterNet heatmap focal loss, IoU/GIoU and smooth-L1 box losses.

Every function returns summed (or per-element) losses; callers normalise (e.g. by the number of
positives averaged over processes, see `mean_over_processes`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torchvision.ops import generalized_box_iou_loss

__all__ = ["binary_heatmap_focal_loss", "giou_loss_xyxy", "ltrb_iou_loss", "mean_over_processes", "smooth_l1_loss"]


def binary_heatmap_focal_loss(logits: torch.Tensor, targets: torch.Tensor, pos_inds: torch.Tensor, *,
                              alpha: float = -1.0, beta: float = 4.0, gamma: float = 2.0,
                              sigmoid_clamp: float = 1e-4,
                              ignore_high_fp: float = -1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed (positive, negative) focal losses of one heatmap channel against gaussian targets.

    logits: (M,) raw scores; targets: (M,) soft targets in [0, 1]; pos_inds: (P,) int64 indices of the
    positive locations (repeats count repeatedly). With p = clamp(sigmoid(logits), c, 1 - c):
      pos = -sum_{i in pos_inds} log(p_i) (1 - p_i)^gamma
      neg = -sum_i log(1 - p_i) p_i^gamma (1 - t_i)^beta   [only where p_i < ignore_high_fp, if that is > 0]
    and, when alpha >= 0, pos *= alpha and neg *= 1 - alpha. Both returned values are >= 0.
    """
    pred = logits.float().sigmoid().clamp(min=sigmoid_clamp, max=1 - sigmoid_clamp)
    pos_pred = pred[pos_inds]
    pos_loss = -(torch.log(pos_pred) * (1 - pos_pred).pow(gamma)).sum()
    neg_terms = torch.log(1 - pred) * pred.pow(gamma) * (1 - targets.float()).pow(beta)
    if ignore_high_fp > 0:
        neg_terms = neg_terms * (pred < ignore_high_fp).to(neg_terms.dtype)
    neg_loss = -neg_terms.sum()
    if alpha >= 0:
        pos_loss = alpha * pos_loss
        neg_loss = (1 - alpha) * neg_loss
    return pos_loss, neg_loss


def ltrb_iou_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                  loss_type: str = "giou", smooth: float = 1.0, reduction: str = "sum") -> torch.Tensor:
    """IoU-type loss between boxes given as (K, 4) distances (left, top, right, bottom) >= 0 from a common point.

    Both boxes contain that point, so intersection = (min l + min r) * (min t + min b) and the enclosing
    box = (max l + max r) * (max t + max b). iou = (inter + smooth) / (union + smooth) (FCOS/CenterNet
    smoothing); giou = iou - (enclose - union) / enclose. loss_type: "iou" -> -log(iou),
    "linear_iou" -> 1 - iou, "giou" -> 1 - giou. `weight` (K,) multiplies each term.
    reduction: "sum" (scalar) or "none" (K,).
    """
    pred, target = pred.float(), target.float()
    pl, pt, pr, pb = pred.unbind(dim=1)
    tl, tt, tr, tb = target.unbind(dim=1)
    pred_area = (pl + pr) * (pt + pb)
    target_area = (tl + tr) * (tt + tb)
    inter = (torch.min(pl, tl) + torch.min(pr, tr)) * (torch.min(pt, tt) + torch.min(pb, tb))
    union = pred_area + target_area - inter
    iou = (inter + smooth) / (union + smooth)
    if loss_type == "iou":
        losses = -torch.log(iou)
    elif loss_type == "linear_iou":
        losses = 1 - iou
    elif loss_type == "giou":
        enclose = (torch.max(pl, tl) + torch.max(pr, tr)) * (torch.max(pt, tt) + torch.max(pb, tb))
        losses = 1 - (iou - (enclose - union) / enclose)
    else:
        raise ValueError(f"unknown IoU loss type {loss_type!r} (iou, linear_iou or giou)")
    if weight is not None:
        losses = losses * weight
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction {reduction!r} (sum or none)")


def giou_loss_xyxy(boxes1: torch.Tensor, boxes2: torch.Tensor, *, reduction: str = "none",
                   eps: float = 1e-7) -> torch.Tensor:
    """1 - GIoU of paired (K, 4) XYXY boxes (any common pixel frame); reduction "none" | "mean" | "sum"."""
    return generalized_box_iou_loss(boxes1.float(), boxes2.float(), reduction=reduction, eps=eps)


def mean_over_processes(value: torch.Tensor) -> torch.Tensor:
    """`value` summed over all processes and divided by their number (itself without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def smooth_l1_loss(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed smooth L1 (plain L1 when beta < 1e-5, as detectron2/fvcore)."""
    diff = (pred - target).abs()
    if beta < 1e-5:
        return diff.sum()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta).sum()
