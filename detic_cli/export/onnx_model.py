"""A Detic R-CNN model as one traceable graph: (image, class_embeddings) -> detections.

Everything between the resized picture and the final detections runs inside the graph, written with
ops that have ONNX counterparts: normalisation and padding, backbone, proposals (CenterNet's heatmap
decoding, or the RPN's anchors, see onnx_c4.py) and their NMS, the box heads (every cascade stage, or
the Res5 head) with the zero-shot classifier built from the `class_embeddings` input, one class per
proposal (cascade), per-class NMS (the coordinate-offset trick), the top-k and the mask head.
The wrapper reuses the model's modules and weights and repeats its inference arithmetic (see
modeling/proposal/centernet.py, rpn.py and modeling/roi_heads/cascade.py, res5.py, fast_rcnn.py); only
the selection steps are expressed differently (fixed top-k then a threshold, instead of a threshold then
a top-k), which selects the same set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, nms

from detic_cli.export.graph_ops import clip_boxes, pool_boxes, top_k
from detic_cli.export.onnx_c4 import res5_scores, rpn_proposals
from detic_cli.modeling.meta_arch import CustomRCNN
from detic_cli.modeling.proposal.centernet import CenterNetProposals, compute_grids
from detic_cli.modeling.proposal.rpn import RPN
from detic_cli.modeling.roi_heads.cascade import DeticCascadeROIHeads
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads
from detic_cli.modeling.roi_heads.zero_shot_classifier import make_class_weights

OUTPUT_NAMES = ("boxes", "scores", "classes", "mask_logits")


class ExportableDetic(nn.Module):
    """`forward(image (1, 3, H, W) float 0-255 in INPUT.FORMAT, class_embeddings (C, D))` -> boxes (N, 4) XYXY
    in input pixels, scores (N,), classes (N,) int64 and, with masks, mask_logits (N, 1, M, M).
    Families: the CenterNet2 cascade (CenterNet proposals + cascade ROI heads) and R50-C4 (RPN + Res5)."""

    def __init__(self, model: CustomRCNN, *, masks: bool = True) -> None:
        super().__init__()
        pg, heads = model.proposal_generator, model.roi_heads
        self.cascade = isinstance(pg, CenterNetProposals) and isinstance(heads, DeticCascadeROIHeads)
        if not self.cascade and not (isinstance(pg, RPN) and isinstance(heads, CustomRes5ROIHeads)):
            raise TypeError("only the CenterNet2 cascade (CenterNet proposals + cascade ROI heads) and R50-C4 "
                            "(RPN + Res5 ROI heads) are traceable")
        self.model = model
        self.masks = masks and getattr(heads, "mask_head", None) is not None

    input_names = ["image", "class_embeddings"]

    @property
    def output_names(self) -> list[str]:
        return list(OUTPUT_NAMES[:4 if self.masks else 3])

    def forward(self, image: torch.Tensor, class_embeddings: torch.Tensor):
        m, heads = self.model, self.model.roi_heads
        height = torch.tensor(image.shape[2], dtype=torch.int64)
        width = torch.tensor(image.shape[3], dtype=torch.int64)
        x = (image - m.pixel_mean[None]) / m.pixel_std[None]
        d = m.size_divisibility
        if d > 1:
            pad_h, pad_w = (d - height % d) % d, (d - width % d) % d
            x = F.pad(x, (0, pad_w, 0, pad_h))  # type: ignore[arg-type]
        features = m.backbone(x)
        if self.cascade:
            weight = make_class_weights(class_embeddings, heads.box_predictor[0].cls_score.norm_weight)
            boxes, scores = self.cascade_scores(features, height, width, weight)
        else:
            weight = make_class_weights(class_embeddings, heads.box_predictor.cls_score.norm_weight)
            proposals, objectness = rpn_proposals(m.proposal_generator, features, height, width)
            boxes, scores = res5_scores(heads, features, proposals, objectness, weight)
        out = self.select(clip_boxes(boxes, height, width), scores)
        if self.masks:
            mask_feats = [features[f] for f in heads.mask_in_features]
            logits = heads.mask_head(pool_boxes(heads.mask_pooler, mask_feats, out[0]))
            if logits.shape[1] > 1:
                logits = logits[torch.arange(logits.shape[0]), out[2]][:, None]
            out = (*out, logits)
        return out

    def cascade_scores(self, features: dict[str, torch.Tensor], height: torch.Tensor, width: torch.Tensor,
                       weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CenterNet proposals through every cascade stage: (last stage's boxes (R, 4), the stages' mean
        class scores (R, C), background dropped, one class per proposal when the heads say so)."""
        heads = self.model.roi_heads
        boxes, proposal_scores = self.proposals(features, height, width)
        feats = [features[f] for f in heads.in_features]
        probs = []
        for k in range(heads.num_stages):
            if k > 0:
                boxes = clip_boxes(boxes, height, width)
            pooled = heads.box_head[k](pool_boxes(heads.box_pooler, feats, boxes))
            boxes, p = self.stage(k, pooled, boxes, weight)
            probs.append(p)
        scores = sum(probs) / heads.num_stages
        if heads.mult_proposal_score:
            scores = (scores * proposal_scores[:, None]) ** 0.5
        scores = scores[:, :-1]
        if heads.one_class_per_proposal:
            scores = scores * (scores == scores.max(dim=1).values[:, None]).to(scores.dtype)
        return boxes, scores

    def stage(self, k: int, x: torch.Tensor, boxes: torch.Tensor, weight: torch.Tensor):
        """(decoded boxes (R, 4), probabilities (R, C + 1)) of cascade stage `k` on its box-head output."""
        predictor = self.model.roi_heads.box_predictor[k]
        x = torch.flatten(x, start_dim=1)
        cls = predictor.cls_score
        logits = cls.score_embeddings(cls.embed(x), weight)
        decoded = predictor.box2box_transform.apply_deltas(predictor.bbox_pred(x), boxes)
        probs = logits.sigmoid() if predictor.use_sigmoid_ce else logits.softmax(dim=-1)
        return decoded, probs

    def proposals(self, features: dict[str, torch.Tensor], height: torch.Tensor, width: torch.Tensor):
        """CenterNetProposals.predict at test time for one image: (boxes (P, 4), sqrt-scores (P,))."""
        pg: CenterNetProposals = self.model.proposal_generator
        feats = [features[f] for f in pg.in_features]
        _, box_reg, agn_hms = pg.centernet_head(feats)
        grids = compute_grids(feats, pg.strides)
        all_boxes, all_scores = [], []
        for grid, heatmap, reg, stride in zip(grids, agn_hms, box_reg, pg.strides):
            scores, loc = top_k(heatmap.sigmoid().reshape(-1), pg.pre_nms_topk[1])
            keep = scores > pg.score_thresh
            scores, loc = scores[keep], loc[keep]
            ltrb = (reg * stride)[0].permute(1, 2, 0).reshape(-1, 4)[loc]
            centres = grid[loc]
            x1 = centres[:, 0] - ltrb[:, 0]
            y1 = centres[:, 1] - ltrb[:, 1]
            x2 = torch.max(centres[:, 0] + ltrb[:, 2], x1 + 0.01)
            y2 = torch.max(centres[:, 1] + ltrb[:, 3], y1 + 0.01)
            all_boxes.append(torch.stack((x1, y1, x2, y2), dim=1))
            all_scores.append(scores.sqrt())
        boxes, scores = torch.cat(all_boxes), torch.cat(all_scores)
        keep = nms(boxes, scores, pg.nms_thresh[1])[: pg.post_nms_topk[1]]
        return boxes[keep], scores[keep]

    def select(self, boxes: torch.Tensor, scores: torch.Tensor):
        """fast_rcnn_inference for one image: (box, class) pairs above the threshold, per-class NMS, top-k."""
        heads = self.model.roi_heads
        index = (scores > heads.score_thresh).nonzero()
        rows, classes = index[:, 0], index[:, 1]
        boxes, scores = boxes[rows], scores[rows, classes]
        keep = batched_nms(boxes, scores, classes, heads.nms_thresh)
        if heads.detections_per_image >= 0:
            keep = keep[: heads.detections_per_image]
        return boxes[keep], scores[keep], classes[keep]
