"""The R50-C4 family's inference in traceable form: RPN proposals and the Res5 ROI heads' scoring.

Repeats modeling/proposal/rpn.py (head, anchors, decoding, `find_top_proposals` at test time) and
modeling/roi_heads/res5.py (pooling, res5, spatial mean, zero-shot classifier, box decoding) for one
image, with the image size as 0-dim tensors and every count (per-level top-k, NMS survivors) dynamic,
so the graph takes any input size. The anchors are laid out from the traced feature-map sizes instead
of the anchor generator's per-size cache, with the same values. The final per-class NMS and top-k are
the wrapper's (`ExportableDetic.select`), shared with the cascade.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from detic_cli.export.graph_ops import pool_boxes, top_k
from detic_cli.modeling.proposal.anchors import DefaultAnchorGenerator
from detic_cli.modeling.proposal.rpn import RPN
from detic_cli.modeling.roi_heads.res5 import CustomRes5ROIHeads


def level_anchors(generator: DefaultAnchorGenerator, level: int, feature: torch.Tensor) -> torch.Tensor:
    """(Hi * Wi * A, 4) XYXY anchors of a (1, C, Hi, Wi) map, ordered (row, column, anchor) as the generator's."""
    base = getattr(generator, f"cell_anchors_{level}")
    stride = generator.strides[level]
    start = generator.offset * stride
    xs = torch.arange(feature.shape[-1], dtype=torch.float32, device=base.device) * stride + start
    ys = torch.arange(feature.shape[-2], dtype=torch.float32, device=base.device) * stride + start
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


def rpn_proposals(rpn: RPN, features: dict[str, torch.Tensor], height: torch.Tensor, width: torch.Tensor):
    """RPN inference for one image: (boxes (P, 4) XYXY clipped to (height, width), objectness logits (P,)),
    by decreasing logit: per level the PRE_NMS_TOPK_TEST best, non-empty after clipping, NMS within each
    level, the POST_NMS_TOPK_TEST best."""
    maps = [features[f] for f in rpn.in_features]
    logits, deltas = rpn.rpn_head(maps)
    all_boxes, all_scores, all_levels = [], [], []
    for level, (feature, logit, delta) in enumerate(zip(maps, logits, deltas)):
        anchors = level_anchors(rpn.anchor_generator, level, feature)
        logit = logit[0].permute(1, 2, 0).reshape(-1)
        delta = delta[0].view(-1, 4, delta.shape[-2], delta.shape[-1]).permute(2, 3, 0, 1).reshape(-1, 4)
        scores, index = top_k(logit, rpn.pre_nms_topk[False])
        all_boxes.append(rpn.box2box_transform.apply_deltas(delta[index], anchors[index]))
        all_scores.append(scores)
        all_levels.append(torch.full_like(index, level))
    boxes, scores, levels = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_levels)
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
    x = torch.minimum(boxes[:, 0::2].clamp(min=0), width.to(boxes.dtype))
    y = torch.minimum(boxes[:, 1::2].clamp(min=0), height.to(boxes.dtype))
    boxes = torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
    keep = ((x[:, 1] - x[:, 0]) > rpn.min_box_size) & ((y[:, 1] - y[:, 0]) > rpn.min_box_size)
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    keep = batched_nms(boxes, scores, levels, rpn.nms_thresh)[: rpn.post_nms_topk[False]]
    return boxes[keep], scores[keep]


def res5_scores(heads: CustomRes5ROIHeads, features: dict[str, torch.Tensor], proposals: torch.Tensor,
                objectness: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Res5 heads on (P, 4) proposals: (decoded boxes (P, 4), class scores (P, C), background dropped).
    `weight` is the (D, C + 1) classifier of the graph's class embeddings, `objectness` the RPN's logits."""
    pooled = pool_boxes(heads.pooler, [features[f] for f in heads.in_features], proposals)
    x = heads.res5(pooled).mean(dim=[2, 3])
    predictor = heads.box_predictor
    cls = predictor.cls_score
    logits = cls.score_embeddings(cls.embed(x), weight)
    boxes = predictor.box2box_transform.apply_deltas(predictor.bbox_pred(x), proposals)
    scores = logits.sigmoid() if predictor.use_sigmoid_ce else logits.softmax(dim=-1)
    if heads.mult_proposal_score:
        scores = (scores * objectness[:, None]) ** 0.5
    return boxes, scores[:, :-1]
