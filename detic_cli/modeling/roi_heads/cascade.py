"""Detic's cascade ROI heads: three box stages of increasing IoU, averaged class scores, optional mask head.

Training (`forward_with_losses`) follows detectron2's CascadeROIHeads: stage 0 trains on the sampled
proposals (+ gt boxes), stage k > 0 on the previous stage's detached, clipped, non-empty predicted
boxes relabelled at IoU `stage_ious[k]`; the pooled features' gradient is scaled by 1 / stages; the
mask head trains on the stage-0 foreground proposals. Weakly annotated batches go to
`forward_image_labels` (see weak_supervision.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.layers.roi_align_levels import PyramidTable
from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.modeling.roi_heads.box_head import FastRCNNConvFCHead
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor, fast_rcnn_inference
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead, mask_rcnn_inference, mask_rcnn_loss
from detic_cli.modeling.roi_heads.rescoring import RegionScorer, attach_embeddings, region_scorer
from detic_cli.modeling.roi_heads.sampling import ProposalSampler, match_and_label, select_foreground
from detic_cli.modeling.roi_heads.score_bound import hopeful_proposals
from detic_cli.modeling.roi_heads.weak_supervision import BatchClassifier, WeakSupervision
from detic_cli.structures import Boxes, Instances


class DeticCascadeROIHeads(nn.Module):
    """Inference: stage k pools the boxes of stage k - 1 (clipped), scores are the mean of the stages'
    probabilities, optionally multiplied with the proposal score (geometric mean), optionally one class
    per proposal; final boxes from the last stage, then NMS and the mask head on the survivors. With
    `keep_embeddings`, detections also carry `pred_embeddings` (N, S, D) and `proposal_scores` (N,).

    Keys: `box_head.{k}`, `box_predictor.{k}`, `mask_head`.
    """

    winograd_convolutions = True  # CPU inference: 3x3 convs via NNPACK (see layers/fast_conv.py)

    def __init__(self, *, in_features: list[str], box_pooler: ROIPooler, box_heads: list[FastRCNNConvFCHead],
                 box_predictors: list[DeticBoxPredictor], mask_in_features: list[str] | None = None,
                 mask_pooler: ROIPooler | None = None, mask_head: MaskRCNNConvUpsampleHead | None = None,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_image: int = 100,
                 mult_proposal_score: bool = False, one_class_per_proposal: bool = False,
                 sampler: ProposalSampler | None = None, stage_ious: list[float] | None = None,
                 losses: FastRCNNLosses | None = None, mask_weight: float = 1.0,
                 weak: WeakSupervision | None = None) -> None:
        super().__init__()
        self.in_features = list(in_features)
        self.box_pooler = box_pooler
        self.box_head = nn.ModuleList(box_heads)
        self.box_predictor = nn.ModuleList(box_predictors)
        self.mask_in_features = list(mask_in_features or [])
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_image = detections_per_image
        self.mult_proposal_score = mult_proposal_score
        self.one_class_per_proposal = one_class_per_proposal
        self.sampler = sampler
        self.stage_ious = list(stage_ious) if stage_ious is not None else None
        self.losses = losses
        self.mask_weight = mask_weight
        self.weak = weak
        self.keep_embeddings = False  # inference: give detections `pred_embeddings` / `proposal_scores`

    @property
    def num_stages(self) -> int:
        return len(self.box_head)

    def set_vocabulary(self, embeddings: torch.Tensor) -> None:
        """(C, D) class embeddings become every stage's classifier."""
        for predictor in self.box_predictor:
            predictor.cls_score.set_embeddings(embeddings)

    def vocabulary_weight(self) -> torch.Tensor:
        """The (D, C + 1) classifier buffer of the current vocabulary (background column last)."""
        return self.box_predictor[0].cls_score.zs_weight

    def run_stage(self, features: list[torch.Tensor], proposals: list[Instances], stage: int,
                  classifier: torch.Tensor | None = None, grad_scale: float | None = None):
        """(class logits (R, C + 1), deltas (R, 4)) for all proposals of the batch.

        `grad_scale` multiplies the gradient flowing back into the pooled features (training);
        `classifier` (K + 1, D) replaces the vocabulary (dynamic classifier).
        """
        return self.box_predictor[stage](self.stage_features(features, proposals, stage, grad_scale), classifier)

    def stage_features(self, features: list[torch.Tensor], proposals: list[Instances], stage: int,
                       grad_scale: float | None = None, table: PyramidTable | None = None) -> torch.Tensor:
        """(R, fc_dim) box-head output of stage `stage` for all proposals of the batch (`table`: the
        features' channels-last rows for CPU inference pooling, shared by the stages)."""
        pooled = self.box_pooler(features, [p.proposal_boxes for p in proposals], table=table)
        if grad_scale is not None:
            pooled = _ScaleGradient.apply(pooled, grad_scale)
        return self.box_head[stage](pooled)

    def run_cascade(self, proposals: list[Instances],
                    step: Callable[[int, list[Instances]], list[torch.Tensor]], *, drop_empty: bool = False,
                    relabel: Callable[[int, list[Instances]], list[Instances]] | None = None) -> None:
        """The stage loop shared by inference, box losses and image-label losses.

        Stage 0 runs `step(0, proposals)`; stage k > 0 runs on stage k - 1's predicted boxes (per image
        (R, 4) XYXY, what `step` returns) clipped to the image, keeping each box's objectness logit;
        `drop_empty` (training) drops boxes with a zero-length side, and `relabel(k, proposals)` (box
        losses) matches them to the ground truth at stage k's IoU.
        """
        image_sizes = [p.image_size for p in proposals]
        boxes = step(0, proposals)
        for k in range(1, self.num_stages):
            proposals = _proposals_from_boxes(boxes, image_sizes, [p.objectness_logits for p in proposals],
                                              drop_empty=drop_empty)
            if relabel is not None:
                proposals = relabel(k, proposals)
            boxes = step(k, proposals)

    def forward(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> list[Instances]:
        if self._prune_hopeless(proposals):
            proposals = hopeful_proposals(proposals, self.score_thresh)
        feats = [features[f] for f in self.in_features]
        image_sizes = [p.image_size for p in proposals]
        proposal_scores = [p.objectness_logits for p in proposals]
        stage_probs: list[list[torch.Tensor]] = []
        embeddings: list[torch.Tensor] = []
        boxes: list[torch.Tensor] = []
        table = self.box_pooler.table(feats)  # CPU inference: made once, pooled by every stage and the masks

        def step(k: int, stage_proposals: list[Instances]) -> list[torch.Tensor]:
            nonlocal boxes
            x = self.stage_features(feats, stage_proposals, k, table=table)
            logits, deltas = self.box_predictor[k](x)
            if self.keep_embeddings:
                embeddings.append(self.box_predictor[k].cls_score.embed(torch.flatten(x, start_dim=1)))
            boxes = self.box_predictor[k].predict_boxes(deltas, stage_proposals)
            stage_probs.append(self.box_predictor[k].predict_probs(logits, stage_proposals))
            return boxes

        self.run_cascade(proposals, step)
        scores = [sum(per_image) / self.num_stages for per_image in zip(*stage_probs)]
        if self.mult_proposal_score:
            scores = [(s * ps[:, None]) ** 0.5 for s, ps in zip(scores, proposal_scores)]
        if self.one_class_per_proposal:
            scores = [s * (s == s[:, :-1].max(dim=1).values[:, None]).float() for s in scores]
        instances = fast_rcnn_inference(boxes, scores, image_sizes, self.score_thresh, self.nms_thresh,
                                        self.detections_per_image, return_rows=self.keep_embeddings)
        if self.keep_embeddings:
            attach_embeddings(instances, embeddings, proposal_scores)
        return self.forward_masks(features, instances, table if self.mask_in_features == self.in_features else None)

    def _prune_hopeless(self, proposals: list[Instances]) -> bool:
        """Proposals that cannot reach `score_thresh` may be dropped (score_bound.py): scores multiplied with
        the proposal score, no embeddings kept for rescoring, float32 CPU inference without autocast or
        tracing (`fast_path_allowed`; no device sync), and MKL's GEMMs, whose rows keep their bits."""
        return (self.mult_proposal_score and not self.keep_embeddings and torch.backends.mkl.is_available()
                and all(fast_path_allowed(p.objectness_logits) for p in proposals))

    def region_scorer(self) -> RegionScorer:
        """How `pred_embeddings` (kept when `keep_embeddings` is set) turn into the final class scores."""
        return region_scorer(list(self.box_predictor), mult_proposal_score=self.mult_proposal_score)

    def forward_masks(self, features: dict[str, torch.Tensor], instances: list[Instances],
                      table: PyramidTable | None = None) -> list[Instances]:
        """Set `pred_masks` on detections when the mask head is on (`table`: as in `stage_features`)."""
        if self.mask_head is None or not instances:
            return instances
        if sum(len(i) for i in instances) == 0:
            for inst in instances:
                size = self.mask_pooler.output_size[0] * 2
                inst.pred_masks = torch.zeros((0, 1, size, size), device=inst.pred_boxes.device)
            return instances
        pooled = self.mask_pooler([features[f] for f in self.mask_in_features], [i.pred_boxes for i in instances],
                                  table=table)
        mask_rcnn_inference(self.mask_head(pooled), instances)
        return instances


    def forward_with_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                            gt_instances: list[Instances], *,
                            batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """`loss_cls_stage{k}`, `loss_box_reg_stage{k}`, with a mask head `loss_mask`, and the weak loss keys
        as zeros (`loss_image_stage{k}` with WITH_IMAGE_LABELS, `loss_caption_stage{k}` with captions).

        proposals: per image `proposal_boxes` + `objectness_logits` (no gradient); gt_instances: per
        image `gt_boxes` (XYXY, padded-input frame), `gt_classes` in [0, C) for the C classes of the
        current vocabulary, optional `gt_masks` bool (G, H, W). `batch.classifier` / `cls_id_map`: the
        dynamic classifier's class subset (the stages score K + 1 columns, targets are renumbered).
        """
        if self.sampler is None or self.losses is None or self.stage_ious is None:
            raise RuntimeError("these ROI heads were built without training settings (sampler, stage_ious, losses)")
        batch = batch or BatchClassifier()
        num_classes = self.box_predictor[0].cls_score.num_classes
        proposals = self.sampler(proposals, gt_instances, num_classes)
        losses = self.box_losses(features, proposals, gt_instances, num_classes, batch)
        if self.mask_head is not None:
            losses["loss_mask"] = self.mask_loss(features, proposals, gt_instances, num_classes) * self.mask_weight
        if self.weak is not None:
            like = losses["loss_cls_stage0"]
            for k in range(self.num_stages):
                losses.update(self.weak.box_batch_zeros(like, suffix=f"_stage{k}"))
        return losses

    def box_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                   gt_instances: list[Instances], num_classes: int,
                   batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Per-stage losses; `proposals` are the labelled stage-0 samples."""
        batch = batch or BatchClassifier()
        feats = [features[f] for f in self.in_features]
        losses: dict[str, torch.Tensor] = {}

        def relabel(k: int, stage_proposals: list[Instances]) -> list[Instances]:
            return match_and_label(stage_proposals, gt_instances, iou_threshold=self.stage_ious[k],
                                   num_classes=num_classes)

        def step(k: int, stage_proposals: list[Instances]) -> list[torch.Tensor]:
            logits, deltas = self.run_stage(feats, stage_proposals, k, batch.classifier,
                                            grad_scale=1.0 / self.num_stages)
            stage = self.losses(logits, deltas, batch.remap(stage_proposals), self.box_predictor[k].box2box_transform)
            losses.update({f"{name}_stage{k}": value for name, value in stage.items()})
            return self.box_predictor[k].predict_boxes(deltas, stage_proposals)

        self.run_cascade(proposals, step, drop_empty=True, relabel=relabel)
        return losses

    def forward_image_labels(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                             image_labels: list[list[int]], *, ann_type: str,
                             batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Losses of a weakly annotated batch: per stage `loss_image_stage{k}` (+ `loss_caption_stage{k}`),
        `loss_cls_stage{k}` / `loss_box_reg_stage{k}` = 0, `loss_mask` = 0 (see weak_supervision.py).

        proposals: the proposal generator's, per image sorted by score; image_labels[i]: vocabulary ids in
        [0, C) of image i. Stage 0 runs on the selected proposals (image box last), stage k > 0 on stage
        k - 1's clipped, non-empty boxes; the pooled features' gradient is scaled by 1 / stages.
        """
        if self.weak is None:
            raise RuntimeError("these ROI heads were built without weak-supervision settings")
        batch = batch or BatchClassifier()
        proposals = self.weak.select(proposals)
        feats = [features[f] for f in self.in_features]
        losses: dict[str, torch.Tensor] = {}

        def step(k: int, stage_proposals: list[Instances]) -> list[torch.Tensor]:
            x = self.stage_features(feats, stage_proposals, k, grad_scale=1.0 / self.num_stages)
            logits, deltas = self.box_predictor[k](x, batch.classifier)
            losses.update(self.weak.stage_losses(logits, deltas, x, stage_proposals, self.box_predictor[k].cls_score,
                                                 image_labels, ann_type=ann_type, batch=batch, suffix=f"_stage{k}"))
            return self.box_predictor[k].predict_boxes(deltas, stage_proposals)

        self.run_cascade(proposals, step, drop_empty=True)
        if self.mask_head is not None:
            # a zero without graph, as the original: the mask head gets no gradient from a weak batch
            losses["loss_mask"] = losses["loss_image_stage0"].new_zeros((), dtype=torch.float32)
        return losses

    def mask_loss(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                  gt_instances: list[Instances], num_classes: int) -> torch.Tensor:
        """`loss_mask` on the foreground of the labelled stage-0 proposals; 0 (no graph) without gt_masks."""
        if not gt_instances or not all(g.has("gt_masks") for g in gt_instances):
            return features[self.mask_in_features[0]].new_zeros((), dtype=torch.float32)
        foreground = select_foreground(proposals, num_classes)
        pooled = self.mask_pooler([features[f] for f in self.mask_in_features],
                                  [p.proposal_boxes for p in foreground])
        return mask_rcnn_loss(self.mask_head(pooled), foreground, [g.gt_masks for g in gt_instances])


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by `scale`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def _proposals_from_boxes(boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]],
                          scores: list[torch.Tensor], drop_empty: bool = False) -> list[Instances]:
    """Next-stage proposals: previous predictions clipped to the image, keeping the proposal scores.

    `drop_empty` (training) removes boxes with a zero-length side after clipping.
    """
    out = []
    for b, size, s in zip(boxes, image_sizes, scores):
        clipped = Boxes(b.detach())
        clipped.clip(size)
        if drop_empty:
            keep = clipped.nonempty()
            clipped, s = clipped[keep], s[keep]
        out.append(Instances(size, proposal_boxes=clipped, objectness_logits=s))
    return out
