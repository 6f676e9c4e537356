"""CenterNet as a proposal network: heatmap peaks + ltrb distances -> class-agnostic proposals."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.layers.nms import nms_top
from detic_cli.modeling.proposal.centernet_head import CenterNetHead
from detic_cli.structures import Boxes, ImageList, Instances


def compute_grids(features: list[torch.Tensor], strides: list[int]) -> list[torch.Tensor]:
    """Per level, the (H*W, 2) xy centres of the cells in input pixels (row-major, + stride // 2)."""
    grids = []
    for feature, stride in zip(features, strides):
        h, w = feature.shape[-2:]
        xs = torch.arange(0, w * stride, step=stride, dtype=torch.float32, device=feature.device)
        ys = torch.arange(0, h * stride, step=stride, dtype=torch.float32, device=feature.device)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grids.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1) + stride // 2)
    return grids


class CenterNetProposals(nn.Module):
    """Inference: per level keep heatmap scores above `score_thresh`, top `pre_nms_topk`, decode ltrb,
    NMS at `nms_thresh` (one class), then keep the `post_nms_topk` best per image (ties at the cut kept).

    Proposals carry `proposal_boxes` (XYXY in the padded input frame, not clipped) and
    `objectness_logits` = sqrt(sigmoid(agnostic heatmap)) in [0, 1] (CenterNet2's convention).
    """

    def __init__(self, *, head: CenterNetHead, in_features: list[str], strides: list[int],
                 score_thresh: float, pre_nms_topk: tuple[int, int], post_nms_topk: tuple[int, int],
                 nms_thresh: tuple[float, float], losses: nn.Module | None = None) -> None:
        super().__init__()
        self.centernet_head = head
        self.in_features = list(in_features)
        self.strides = list(strides)
        self.score_thresh = score_thresh
        self.pre_nms_topk = pre_nms_topk  # (train, test)
        self.post_nms_topk = post_nms_topk
        self.nms_thresh = nms_thresh
        self.losses = losses

    def forward(self, images: ImageList, features: dict[str, torch.Tensor]) -> list[Instances]:
        """Proposals for each image (inference)."""
        feats = [features[f] for f in self.in_features]
        _, box_reg, agn_hms = self.centernet_head(feats)
        grids = compute_grids(feats, self.strides)
        return self.predict(grids, [a.sigmoid() for a in agn_hms], box_reg, images.image_sizes)

    def forward_with_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                            gt_instances: list[Instances]) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """Proposals (detached) plus the `loss_centernet_*` terms for `gt_instances` (padded-input frame)."""
        if self.losses is None:
            raise RuntimeError("CenterNet was built without a loss module")
        feats = [features[f] for f in self.in_features]
        _, box_reg, agn_hms = self.centernet_head(feats)
        grids = compute_grids(feats, self.strides)
        losses = self.losses(grids=grids, box_reg=box_reg, agn_hms=agn_hms, gt_instances=gt_instances)
        with torch.no_grad():
            proposals = self.predict(grids, [a.sigmoid() for a in agn_hms], box_reg, images.image_sizes)
        return proposals, losses

    def predict(self, grids, heatmaps, box_reg, image_sizes: list[tuple[int, int]]) -> list[Instances]:
        mode = 1 if not self.training else 0
        per_level = [self._level(g, h, r * s, self.pre_nms_topk[mode])
                     for g, h, r, s in zip(grids, heatmaps, box_reg, self.strides)]
        results = []
        for i, size in enumerate(image_sizes):
            boxes = torch.cat([lv[i][0] for lv in per_level])
            scores = torch.cat([lv[i][1] for lv in per_level])
            keep = nms_top(boxes, scores, self.nms_thresh[mode], self.post_nms_topk[mode])
            boxes, scores = boxes[keep], scores[keep]
            results.append(Instances(size, proposal_boxes=Boxes(boxes), objectness_logits=scores))
        return results

    def _level(self, grid: torch.Tensor, heatmap: torch.Tensor, ltrb: torch.Tensor, topk: int):
        """Per image (boxes (n, 4), scores (n,)) from one level; scores are sqrt of heatmap probabilities."""
        n = heatmap.shape[0]
        scores_all = heatmap.reshape(n, -1)
        ltrb_all = ltrb.permute(0, 2, 3, 1).reshape(n, -1, 4)
        out = []
        for i in range(n):
            candidates = scores_all[i] > self.score_thresh
            scores = scores_all[i][candidates]
            loc = candidates.nonzero().squeeze(1)
            if scores.numel() > topk:
                scores, top = scores.topk(topk, sorted=False)
                loc = loc[top]
            reg, centres = ltrb_all[i][loc], grid[loc]
            x1 = centres[:, 0] - reg[:, 0]
            y1 = centres[:, 1] - reg[:, 1]
            x2 = torch.max(centres[:, 0] + reg[:, 2], x1 + 0.01)
            y2 = torch.max(centres[:, 1] + reg[:, 3], y1 + 0.01)
            out.append((torch.stack((x1, y1, x2, y2), dim=1), scores.sqrt()))
        return out
