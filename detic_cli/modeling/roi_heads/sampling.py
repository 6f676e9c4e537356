"""Training targets of the ROI heads: which proposals are trained, and on which ground truth.

detectron2's ROIHeads.label_and_sample_proposals (stage 0 / Res5) and CascadeROIHeads'
_match_and_label_boxes (later stages). Boxes are XYXY in the padded network-input frame, the frame of
the training `gt_boxes`. Labelled proposals gain `gt_classes` (int64 (R,), C = background),
`gt_boxes` (Boxes (R, 4); the proposal itself where there is no ground truth) and `gt_index` (int64
(R,), index of the matched ground truth in its image, 0 without ground truth; used for the mask targets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from detic_cli.modeling.matching import match_by_iou, subsample_labels
from detic_cli.structures import Boxes, Instances, pairwise_iou

# Objectness given to ground-truth boxes appended to the proposals (detectron2: logit of 1 - 1e-10).
GT_PROPOSAL_LOGIT = math.log((1.0 - 1e-10) / (1 - (1.0 - 1e-10)))


def add_ground_truth_to_proposals(proposals: list[Instances], gt_instances: list[Instances]) -> list[Instances]:
    """Each image's proposals followed by its gt boxes as proposals (objectness GT_PROPOSAL_LOGIT)."""
    out = []
    for props, gt in zip(proposals, gt_instances, strict=True):
        boxes = gt.gt_boxes.tensor.to(props.proposal_boxes.tensor.dtype)
        gt_props = Instances(props.image_size, proposal_boxes=Boxes(boxes),
                             objectness_logits=props.objectness_logits.new_full((len(gt),), GT_PROPOSAL_LOGIT))
        out.append(Instances.cat([props, gt_props]))
    return out


def _attach_targets(proposals: Instances, gt: Instances, matched: torch.Tensor, gt_classes: torch.Tensor) -> None:
    proposals.gt_classes = gt_classes
    if len(gt):
        proposals.gt_boxes = Boxes(gt.gt_boxes.tensor[matched])
        proposals.gt_index = matched
    else:
        proposals.gt_boxes = Boxes(proposals.proposal_boxes.tensor.clone())
        proposals.gt_index = torch.zeros_like(gt_classes)


@dataclass
class ProposalSampler:
    """Stage-0 labelling: match at `iou_thresholds`/`iou_labels` (no low-quality matches), then sample
    `batch_size_per_image` proposals per image with at most `positive_fraction` foreground.

    ROI_HEADS.IOU_THRESHOLDS, IOU_LABELS, BATCH_SIZE_PER_IMAGE, POSITIVE_FRACTION, PROPOSAL_APPEND_GT.
    """

    iou_thresholds: Sequence[float] = (0.5,)
    iou_labels: Sequence[int] = (0, 1)
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    append_gt: bool = True

    @torch.no_grad()
    def __call__(self, proposals: list[Instances], gt_instances: list[Instances],
                 num_classes: int) -> list[Instances]:
        """Sampled proposals (foreground first) with targets; gt classes in [0, num_classes)."""
        if self.append_gt:
            proposals = add_ground_truth_to_proposals(proposals, gt_instances)
        out = []
        for props, gt in zip(proposals, gt_instances, strict=True):
            iou = pairwise_iou(gt.gt_boxes, props.proposal_boxes)
            matched, labels = match_by_iou(iou, self.iou_thresholds, self.iou_labels, False)
            if len(gt):
                gt_classes = gt.gt_classes[matched]
                gt_classes[labels == 0] = num_classes
                gt_classes[labels == -1] = -1
            else:
                gt_classes = torch.full_like(matched, num_classes)
            fg, bg = subsample_labels(gt_classes, self.batch_size_per_image, self.positive_fraction, num_classes)
            keep = torch.cat([fg, bg])
            sampled = props[keep]
            _attach_targets(sampled, gt, matched[keep], gt_classes[keep])
            out.append(sampled)
        return out


@torch.no_grad()
def match_and_label(proposals: list[Instances], gt_instances: list[Instances], *, iou_threshold: float,
                    num_classes: int) -> list[Instances]:
    """Later cascade stages: every proposal is kept; IoU >= `iou_threshold` with its best gt is
    foreground of that gt's class, the rest background (class `num_classes`). Sets fields in place."""
    for props, gt in zip(proposals, gt_instances, strict=True):
        matched, labels = match_by_iou(pairwise_iou(gt.gt_boxes, props.proposal_boxes), [iou_threshold], [0, 1],
                                       False)
        if len(gt):
            gt_classes = gt.gt_classes[matched]
            gt_classes[labels == 0] = num_classes
        else:
            gt_classes = torch.full_like(matched, num_classes)
        _attach_targets(props, gt, matched, gt_classes)
    return proposals


def select_foreground(proposals: list[Instances], num_classes: int) -> list[Instances]:
    """Per image, the proposals labelled with a class in [0, num_classes)."""
    return [p[(p.gt_classes >= 0) & (p.gt_classes < num_classes)] for p in proposals]
