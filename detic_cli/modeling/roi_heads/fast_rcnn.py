"""Box predictor of one R-CNN stage: zero-shot class logits and class-agnostic box deltas."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.modeling.roi_heads.zero_shot_classifier import ZeroShotClassifier
from detic_cli.structures import Boxes, Instances


class DeticBoxPredictor(nn.Module):
    """`cls_score` (ZeroShotClassifier) and `bbox_pred`: an MLP to 4 deltas (Detic) or one linear layer.

    Logits are (N, C + 1) with the background last; probabilities are sigmoids (USE_SIGMOID_CE)
    or a softmax.
    """

    def __init__(self, *, input_size: int, num_classes: int, box2box_transform: Box2BoxTransform,
                 use_sigmoid_ce: bool = True, mlp_bbox_pred: bool = True, zs_weight_dim: int = 512,
                 use_bias: float = 0.0, norm_weight: bool = True, norm_temperature: float = 50.0) -> None:
        super().__init__()
        self.box2box_transform = box2box_transform
        self.use_sigmoid_ce = use_sigmoid_ce
        self.cls_score = ZeroShotClassifier(input_size=input_size, num_classes=num_classes,
                                            zs_weight_dim=zs_weight_dim, use_bias=use_bias,
                                            norm_weight=norm_weight, norm_temperature=norm_temperature)
        if mlp_bbox_pred:
            self.bbox_pred = nn.Sequential(nn.Linear(input_size, input_size), nn.ReLU(inplace=True),
                                           nn.Linear(input_size, 4))
            nn.init.kaiming_uniform_(self.bbox_pred[0].weight, a=1)  # Detic's c2_xavier_fill
            nn.init.zeros_(self.bbox_pred[0].bias)
            nn.init.normal_(self.bbox_pred[-1].weight, std=0.001)
            nn.init.zeros_(self.bbox_pred[-1].bias)
        else:
            self.bbox_pred = nn.Linear(input_size, 4)
            nn.init.normal_(self.bbox_pred.weight, std=0.001)
            nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor, classifier: torch.Tensor | None = None):
        """(N, input_size) -> (class logits (N, C + 1), deltas (N, 4))."""
        x = torch.flatten(x, start_dim=1)
        return self.cls_score(x, classifier), self.bbox_pred(x)

    def predict_boxes(self, deltas: torch.Tensor, proposals: list[Instances]) -> list[torch.Tensor]:
        """Per image (R_i, 4) decoded XYXY boxes."""
        if not proposals:
            return []
        boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
        decoded = self.box2box_transform.apply_deltas(deltas, boxes)
        return list(decoded.split([len(p) for p in proposals]))

    def predict_probs(self, logits: torch.Tensor, proposals: list[Instances]) -> list[torch.Tensor]:
        """Per image (R_i, C + 1) class probabilities."""
        probs = logits.sigmoid() if self.use_sigmoid_ce else logits.softmax(dim=-1)
        return list(probs.split([len(p) for p in proposals]))


def fast_rcnn_inference(boxes: list[torch.Tensor], scores: list[torch.Tensor],
                        image_sizes: list[tuple[int, int]], score_thresh: float, nms_thresh: float,
                        topk_per_image: int, return_rows: bool = False) -> list[Instances]:
    """Per image: clip boxes, keep (box, class) pairs scoring above `score_thresh`, class-wise NMS, top-k.

    `boxes[i]` is (R, 4) class-agnostic or (R, 4C); `scores[i]` is (R, C + 1) with the background last.
    `return_rows` adds `proposal_rows` (N,) int64: the row in [0, R) each detection comes from.
    """
    return [_inference_single(b, s, size, score_thresh, nms_thresh, topk_per_image, return_rows)
            for b, s, size in zip(boxes, scores, image_sizes)]


def _inference_single(boxes: torch.Tensor, scores: torch.Tensor, image_size: tuple[int, int],
                      score_thresh: float, nms_thresh: float, topk: int, return_rows: bool = False) -> Instances:
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    rows = None
    if not valid.all():
        boxes, scores = boxes[valid], scores[valid]
        rows = valid.nonzero()[:, 0]
    scores = scores[:, :-1]
    num_reg = boxes.shape[1] // 4
    clipped = Boxes(boxes.reshape(-1, 4))
    clipped.clip(image_size)
    boxes = clipped.tensor.view(-1, num_reg, 4)
    mask = scores > score_thresh
    index = mask.nonzero()
    boxes = boxes[index[:, 0], 0] if num_reg == 1 else boxes[mask]
    scores = scores[mask]
    keep = batched_nms(boxes, scores, index[:, 1], nms_thresh)
    if topk >= 0:
        keep = keep[:topk]
    out = Instances(image_size, pred_boxes=Boxes(boxes[keep]), scores=scores[keep], pred_classes=index[keep, 1])
    if return_rows:
        out.proposal_rows = index[keep, 0] if rows is None else rows[index[keep, 0]]
    return out
