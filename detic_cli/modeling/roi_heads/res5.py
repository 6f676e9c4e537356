"""Res5 ROI heads (the C4 models): pool res4 regions, run the res5 stage, average, classify."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor, fast_rcnn_inference
from detic_cli.modeling.roi_heads.sampling import ProposalSampler
from detic_cli.structures import Instances


class CustomRes5ROIHeads(nn.Module):
    """Inference: ROIAlign on `in_features` (one map), `res5`, spatial mean, zero-shot predictor, then
    per-class NMS. Scores may be multiplied with the proposal score; `one_class_per_proposal` is not
    applied here (the original's Res5 heads ignore it). Keys: `res5.*`, `box_predictor.*`.
    Training (`forward_with_losses`): label and sample the proposals + gt boxes with `sampler`, then
    `loss_cls` and `loss_box_reg` from `losses`.
    """

    def __init__(self, *, in_features: list[str], pooler: ROIPooler, res5: nn.Sequential,
                 box_predictor: DeticBoxPredictor, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_image: int = 100, mult_proposal_score: bool = False,
                 sampler: ProposalSampler | None = None, losses: FastRCNNLosses | None = None) -> None:
        super().__init__()
        self.in_features = list(in_features)
        self.pooler = pooler
        self.res5 = res5
        self.box_predictor = box_predictor
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_image = detections_per_image
        self.mult_proposal_score = mult_proposal_score
        self.sampler = sampler
        self.losses = losses

    def set_vocabulary(self, embeddings: torch.Tensor) -> None:
        self.box_predictor.cls_score.set_embeddings(embeddings)

    def box_features(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> torch.Tensor:
        """(R, C) region features: res5 of the pooled regions, averaged over space."""
        pooled = self.pooler([features[f] for f in self.in_features], [p.proposal_boxes for p in proposals])
        return self.res5(pooled).mean(dim=[2, 3])

    def forward(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> list[Instances]:
        logits, deltas = self.box_predictor(self.box_features(features, proposals))
        boxes = self.box_predictor.predict_boxes(deltas, proposals)
        scores = self.box_predictor.predict_probs(logits, proposals)
        if self.mult_proposal_score:
            scores = [(s * p.objectness_logits[:, None]) ** 0.5 for s, p in zip(scores, proposals)]
        return fast_rcnn_inference(boxes, scores, [p.image_size for p in proposals], self.score_thresh,
                                   self.nms_thresh, self.detections_per_image)

    def forward_with_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                            gt_instances: list[Instances]) -> dict[str, torch.Tensor]:
        """`loss_cls` and `loss_box_reg` for RPN `proposals` (no gradient) and per-image `gt_instances`
        (`gt_boxes` XYXY in the padded-input frame, `gt_classes` in [0, C) of the current vocabulary)."""
        if self.sampler is None or self.losses is None:
            raise RuntimeError("these ROI heads were built without training settings (sampler, losses)")
        proposals = self.sampler(proposals, gt_instances, self.box_predictor.cls_score.num_classes)
        logits, deltas = self.box_predictor(self.box_features(features, proposals))
        return self.losses(logits, deltas, proposals, self.box_predictor.box2box_transform)
