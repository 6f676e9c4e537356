"""Res5 ROI heads (the C4 models): pool res4 regions, run the res5 stage, average, classify."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.layers.roi_align_nhwc import roi_align_nhwc
from detic_cli.layers.roi_pooler import ROIPooler, boxes_to_rois, pools_by_gather
from detic_cli.modeling.roi_heads.box_losses import FastRCNNLosses
from detic_cli.modeling.roi_heads.fast_rcnn import DeticBoxPredictor, fast_rcnn_inference
from detic_cli.modeling.roi_heads.res5_inference import FoldedRes5
from detic_cli.modeling.roi_heads.rescoring import RegionScorer, attach_embeddings, region_scorer
from detic_cli.modeling.roi_heads.sampling import ProposalSampler
from detic_cli.modeling.roi_heads.weak_supervision import BatchClassifier, WeakSupervision
from detic_cli.structures import Instances


class CustomRes5ROIHeads(nn.Module):
    """Inference: ROIAlign on `in_features` (one map), `res5`, spatial mean, zero-shot predictor, then
    per-class NMS. Scores may be multiplied with the proposal score; `one_class_per_proposal` is not
    applied here (the original's Res5 heads ignore it). Keys: `res5.*`, `box_predictor.*`.
    Training (`forward_with_losses`): label and sample the proposals + gt boxes with `sampler`, then
    `loss_cls` and `loss_box_reg` from `losses`; weakly annotated batches: `forward_image_labels`.
    """

    def __init__(self, *, in_features: list[str], pooler: ROIPooler, res5: nn.Sequential,
                 box_predictor: DeticBoxPredictor, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_image: int = 100, mult_proposal_score: bool = False,
                 sampler: ProposalSampler | None = None, losses: FastRCNNLosses | None = None,
                 weak: WeakSupervision | None = None) -> None:
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
        self.weak = weak
        self.keep_embeddings = False  # inference: give detections `pred_embeddings` / `proposal_scores`
        self._folded: FoldedRes5 | None = None  # inference form of res5, rebuilt when its weights change

    def set_vocabulary(self, embeddings: torch.Tensor) -> None:
        self.box_predictor.cls_score.set_embeddings(embeddings)

    def vocabulary_weight(self) -> torch.Tensor:
        """The (D, C + 1) classifier buffer of the current vocabulary (background column last)."""
        return self.box_predictor.cls_score.zs_weight

    def box_features(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> torch.Tensor:
        """(R, C) region features: res5 of the pooled regions, averaged over space.

        Without gradients (float32, no autocast) res5 runs folded (`FoldedRes5`: frozen BN in the convs,
        channels-last GEMMs), equal up to float rounding; on the CPU the regions are then pooled by
        `roi_align_nhwc`, only the bins res5's strided first convolutions read, after the first block's 1x1
        weights are applied to the feature map (`FoldedRes5.run_on_features`). Training keeps the modules."""
        maps = [features[f] for f in self.in_features]
        boxes = [p.proposal_boxes for p in proposals]
        folded = self._inference_res5(maps[0])
        if folded is not None and len(maps) == 1 and pools_by_gather(maps[0]):
            pooler, rois = self.pooler, boxes_to_rois(boxes)
            side = -(-pooler.output_size[0] // folded.subsample)
            return folded.run_on_features(maps[0], lambda table: roi_align_nhwc(
                table, rois, pooler.output_size[0], pooler.scales[0], pooler.sampling_ratio, pooler.aligned,
                bin_step=folded.subsample), bins=rois.shape[0] * side * side)
        pooled = self.pooler(maps, boxes)
        return folded(pooled) if folded is not None else self.res5(pooled).mean(dim=[2, 3])

    def _inference_res5(self, pooled: torch.Tensor) -> FoldedRes5 | None:
        if (torch.is_grad_enabled() or pooled.dtype != torch.float32
                or torch.is_autocast_enabled(pooled.device.type) or not FoldedRes5.supported(self.res5)):
            return None
        if self._folded is None or not self._folded.matches(self.res5):
            self._folded = FoldedRes5(self.res5)
        return self._folded

    def forward(self, features: dict[str, torch.Tensor], proposals: list[Instances]) -> list[Instances]:
        x = self.box_features(features, proposals)
        logits, deltas = self.box_predictor(x)
        boxes = self.box_predictor.predict_boxes(deltas, proposals)
        scores = self.box_predictor.predict_probs(logits, proposals)
        if self.mult_proposal_score:
            scores = [(s * p.objectness_logits[:, None]) ** 0.5 for s, p in zip(scores, proposals)]
        instances = fast_rcnn_inference(boxes, scores, [p.image_size for p in proposals], self.score_thresh,
                                        self.nms_thresh, self.detections_per_image, return_rows=self.keep_embeddings)
        if self.keep_embeddings:
            attach_embeddings(instances, [self.box_predictor.cls_score.embed(torch.flatten(x, start_dim=1))],
                              [p.objectness_logits for p in proposals])
        return instances

    def region_scorer(self) -> RegionScorer:
        """How `pred_embeddings` (kept when `keep_embeddings` is set; S = 1) turn into the class scores."""
        return region_scorer([self.box_predictor], mult_proposal_score=self.mult_proposal_score)

    def forward_with_losses(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                            gt_instances: list[Instances], *,
                            batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """`loss_cls` and `loss_box_reg` for RPN `proposals` (no gradient) and per-image `gt_instances`
        (`gt_boxes` XYXY in the padded-input frame, `gt_classes` in [0, C) of the current vocabulary), plus
        the weak loss keys as zeros (`loss_image` with WITH_IMAGE_LABELS, `loss_caption` with captions).
        `batch.classifier` / `cls_id_map`: the dynamic classifier's class subset."""
        if self.sampler is None or self.losses is None:
            raise RuntimeError("these ROI heads were built without training settings (sampler, losses)")
        batch = batch or BatchClassifier()
        proposals = self.sampler(proposals, gt_instances, self.box_predictor.cls_score.num_classes)
        logits, deltas = self.box_predictor(self.box_features(features, proposals), batch.classifier)
        losses = self.losses(logits, deltas, batch.remap(proposals), self.box_predictor.box2box_transform)
        if self.weak is not None:
            losses.update(self.weak.box_batch_zeros(losses["loss_cls"]))
        return losses

    def forward_image_labels(self, features: dict[str, torch.Tensor], proposals: list[Instances],
                             image_labels: list[list[int]], *, ann_type: str,
                             batch: BatchClassifier | None = None) -> dict[str, torch.Tensor]:
        """Losses of a weakly annotated batch: `loss_image` (+ `loss_caption`), `loss_cls` = `loss_box_reg` = 0.

        proposals: the RPN's, per image sorted by score; image_labels[i]: vocabulary ids in [0, C) of
        image i. The caption term uses the res5 feature of each image's whole-image box.
        """
        if self.weak is None:
            raise RuntimeError("these ROI heads were built without weak-supervision settings")
        batch = batch or BatchClassifier()
        proposals = self.weak.select(proposals)
        x = self.box_features(features, proposals)
        logits, deltas = self.box_predictor(x, batch.classifier)
        return self.weak.stage_losses(logits, deltas, x, proposals, self.box_predictor.cls_score, image_labels,
                                      ann_type=ann_type, batch=batch)
