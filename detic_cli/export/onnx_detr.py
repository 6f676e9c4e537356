"""Deformable DETR (closed vocabulary) as one traceable graph: image -> detections.

The graph normalises the picture, runs the backbone, the deformable encoder and decoder (the multi-scale
deformable attention traces through its `grid_sample` form, see modeling/detr/ms_deform_attn.py) and the
demo's post-processing: the TEST.DETECTIONS_PER_IMAGE best (query, class) pairs by sigmoid score, several
classes per query allowed, no threshold and no NMS (as modeling/detr/meta_arch.py). Its classifier is
learned, so there is no `class_embeddings` input. The level shapes of the transformer are fixed when
traced: the graph takes the one input size it was exported at (`detic export --size H W`).
"""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.modeling.detr.box_ops import box_cxcywh_to_xyxy
from detic_cli.modeling.detr.meta_arch import DeformableDetr


class ExportableDetr(nn.Module):
    """`forward(image (1, 3, H, W) float 0-255 in INPUT.FORMAT)` -> boxes (K, 4) XYXY in input pixels (not
    clipped, as the original), scores (K,) sigmoid probabilities, classes (K,) int64; K = the model's top-k."""

    masks = False
    output_names = ["boxes", "scores", "classes"]
    input_names = ["image"]

    def __init__(self, model: DeformableDetr) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        m = self.model
        x = (image - m.pixel_mean[None]) / m.pixel_std[None]
        mask = torch.zeros((1, image.shape[2], image.shape[3]), dtype=torch.bool, device=image.device)
        out = m.detr(x, mask)
        logits, boxes = out["pred_logits"][0], out["pred_boxes"][0]
        num_classes = logits.shape[1]
        scores, index = torch.topk(logits.sigmoid().reshape(-1), m.test_topk)
        query = torch.div(index, num_classes, rounding_mode="floor")
        size = torch.tensor([image.shape[3], image.shape[2], image.shape[3], image.shape[2]], dtype=boxes.dtype)
        return box_cxcywh_to_xyxy(boxes)[query] * size, scores, index % num_classes
