"""RPN training targets and losses, as detectron2's RPN computes them.

Anchors are matched to ground truth by IoU (below 0.3 negative, 0.3-0.7 ignored, at least 0.7
positive, plus each ground-truth box's best anchors as positives), 256 anchors per image are
sampled with at most half positive, and the losses are a summed BCE on the sampled objectness
logits and a summed box loss on the positive anchors, both divided by 256 * images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.layers.losses import smooth_l1_loss
from detic_cli.modeling.matching import match_by_iou, subsample_labels
from detic_cli.structures import Boxes, pairwise_iou

__all__ = ["RPNLoss"]

_IOU_LOSSES = {"giou": generalized_box_iou_loss, "diou": distance_box_iou_loss, "ciou": complete_box_iou_loss}


class RPNLoss:
    """Targets and losses for one RPN; `loss_rpn_cls` and `loss_rpn_loc` (already weighted)."""

    def __init__(self, *, box2box_transform: Box2BoxTransform, iou_thresholds: Sequence[float] = (0.3, 0.7),
                 iou_labels: Sequence[int] = (0, -1, 1), batch_size_per_image: int = 256,
                 positive_fraction: float = 0.5, box_reg_loss_type: str = "smooth_l1", smooth_l1_beta: float = 0.0,
                 loss_weight: float = 1.0, box_reg_loss_weight: float = 1.0, boundary_thresh: float = -1) -> None:
        if box_reg_loss_type != "smooth_l1" and box_reg_loss_type not in _IOU_LOSSES:
            raise ValueError(f"unknown RPN box loss {box_reg_loss_type!r}")
        self.box2box_transform = box2box_transform
        self.iou_thresholds, self.iou_labels = list(iou_thresholds), list(iou_labels)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.box_reg_loss_type, self.smooth_l1_beta = box_reg_loss_type, float(smooth_l1_beta)
        self.weights = {"loss_rpn_cls": loss_weight, "loss_rpn_loc": box_reg_loss_weight * loss_weight}
        self.boundary_thresh = boundary_thresh

    @torch.no_grad()
    def targets(self, anchors: Sequence[torch.Tensor], gt_boxes: Sequence[Boxes],
                image_sizes: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R) labels in {-1, 0, 1} after sampling and (B, R, 4) matched gt boxes (XYXY).

        anchors: per level (R_l, 4) XYXY; gt_boxes: per image, in the same padded-input frame.
        """
        all_anchors = Boxes(torch.cat(list(anchors)))
        labels, matched = [], []
        for boxes, (h, w) in zip(gt_boxes, image_sizes, strict=True):
            idx, lab = match_by_iou(pairwise_iou(boxes, all_anchors), self.iou_thresholds, self.iou_labels, True)
            lab = lab.to(torch.int64)
            if self.boundary_thresh >= 0:
                t, a = self.boundary_thresh, all_anchors.tensor
                inside = (a[:, 0] >= -t) & (a[:, 1] >= -t) & (a[:, 2] < w + t) & (a[:, 3] < h + t)
                lab[~inside] = -1
            pos, neg = subsample_labels(lab, self.batch_size_per_image, self.positive_fraction, 0)
            lab = torch.full_like(lab, -1)
            lab[pos], lab[neg] = 1, 0
            labels.append(lab)
            matched.append(boxes.tensor[idx] if len(boxes) else torch.zeros_like(all_anchors.tensor))
        return torch.stack(labels), torch.stack(matched)

    def losses(self, anchors: Sequence[torch.Tensor], logits: Sequence[torch.Tensor],
               deltas: Sequence[torch.Tensor], gt_labels: torch.Tensor,
               gt_boxes: torch.Tensor) -> dict[str, torch.Tensor]:
        """logits: per level (B, R_l); deltas: per level (B, R_l, 4); targets from `targets`."""
        pos = gt_labels == 1
        valid = gt_labels >= 0
        pred_deltas = torch.cat(list(deltas), dim=1)
        all_anchors = torch.cat(list(anchors))
        if self.box_reg_loss_type == "smooth_l1":
            target = torch.stack([self.box2box_transform.get_deltas(all_anchors, g) for g in gt_boxes])
            loc = smooth_l1_loss(pred_deltas[pos], target[pos], self.smooth_l1_beta)
        else:
            pred_boxes = torch.stack([self.box2box_transform.apply_deltas(d, all_anchors) for d in pred_deltas])
            loc = _IOU_LOSSES[self.box_reg_loss_type](pred_boxes[pos], gt_boxes[pos], reduction="sum")
        cls = F.binary_cross_entropy_with_logits(torch.cat(list(logits), dim=1)[valid],
                                                 gt_labels[valid].to(torch.float32), reduction="sum")
        normalizer = self.batch_size_per_image * gt_labels.shape[0]
        return {"loss_rpn_cls": cls / normalizer * self.weights["loss_rpn_cls"],
                "loss_rpn_loc": loc / normalizer * self.weights["loss_rpn_loc"]}
