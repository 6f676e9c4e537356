"""Hungarian matching of Deformable DETR queries to ground-truth boxes (one query per target, the rest unmatched).

The cost of pairing query q with target t is
    cost_class * (focal_pos(p) - focal_neg(p))[q, label_t] + cost_bbox * |box_q - box_t|_1 + cost_giou * -GIoU,
with p the sigmoid class probabilities, focal_pos(p) = alpha (1 - p)^gamma (-log(p + 1e-8)) and
focal_neg(p) = (1 - alpha) p^gamma (-log(1 - p + 1e-8)), alpha 0.25 and gamma 2 as in the original
(its matcher keeps alpha at 0.25 whatever MODEL.DETR.FOCAL_ALPHA says). Boxes are normalised cxcywh in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import generalized_box_iou

from detic_cli.modeling.detr.box_ops import box_cxcywh_to_xyxy

__all__ = ["HungarianMatcher", "focal_class_cost"]

MATCH_ALPHA = 0.25
MATCH_GAMMA = 2.0


def focal_class_cost(prob: torch.Tensor, labels: torch.Tensor, *, alpha: float = MATCH_ALPHA,
                     gamma: float = MATCH_GAMMA) -> torch.Tensor:
    """prob: (Q, C) sigmoid probabilities in [0, 1]; labels: int64 (T,) in [0, C) -> (Q, T) class cost."""
    p = prob[:, labels]
    pos = alpha * (1 - p) ** gamma * (-(p + 1e-8).log())
    neg = (1 - alpha) * p ** gamma * (-(1 - p + 1e-8).log())
    return pos - neg


class HungarianMatcher:
    """Minimum-cost one-to-one assignment per image (scipy's linear_sum_assignment on the CPU)."""

    def __init__(self, *, cost_class: float = 1.0, cost_bbox: float = 1.0, cost_giou: float = 1.0) -> None:
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("the matching costs cannot all be 0")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    @torch.no_grad()
    def cost_matrix(self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor, labels: torch.Tensor,
                    boxes: torch.Tensor) -> torch.Tensor:
        """One image: pred_logits (Q, C), pred_boxes (Q, 4) cxcywh; labels (T,), boxes (T, 4) cxcywh -> (Q, T)."""
        prob = pred_logits.float().sigmoid()
        pred_boxes, boxes = pred_boxes.float(), boxes.float()
        cost = self.cost_class * focal_class_cost(prob, labels)
        cost = cost + self.cost_bbox * torch.cdist(pred_boxes, boxes, p=1)
        giou = generalized_box_iou(box_cxcywh_to_xyxy(pred_boxes), box_cxcywh_to_xyxy(boxes))
        return cost - self.cost_giou * giou

    @torch.no_grad()
    def __call__(self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor,
                 targets: list[dict[str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """pred_logits: (N, Q, C) logits; pred_boxes: (N, Q, 4) cxcywh in [0, 1]; targets: N dicts with
        "labels" int64 (T_i,) and "boxes" (T_i, 4) cxcywh in [0, 1].

        Returns per image (query indices, target indices), int64 CPU tensors of length min(Q, T_i),
        ordered by query index.
        """
        from scipy.optimize import linear_sum_assignment  # training only: inference does not need scipy

        matches = []
        for logits, pboxes, target in zip(pred_logits, pred_boxes, targets):
            if len(target["labels"]) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                matches.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(logits, pboxes, target["labels"], target["boxes"]).cpu().numpy()
            rows, cols = linear_sum_assignment(cost)
            matches.append((torch.as_tensor(np.asarray(rows), dtype=torch.int64),
                            torch.as_tensor(np.asarray(cols), dtype=torch.int64)))
        return matches
