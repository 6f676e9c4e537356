"""Region Proposal Network (Faster R-CNN), detectron2's StandardRPNHead + RPN inference.

State-dict keys (under `proposal_generator.`): `rpn_head.conv.{weight,bias}` (one 3x3 conv; with
several conv_dims `rpn_head.conv.conv{i}.*`), `rpn_head.objectness_logits.*` (A outputs),
`rpn_head.anchor_deltas.*` (A * 4 outputs). Anchor buffers are not persistent.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from detic_cli.layers.box_transform import Box2BoxTransform
from detic_cli.modeling.proposal.anchors import DefaultAnchorGenerator
from detic_cli.modeling.proposal.rpn_loss import RPNLoss
from detic_cli.structures import Boxes, ImageList, Instances

__all__ = ["RPN", "StandardRPNHead", "find_top_proposals"]


class StandardRPNHead(nn.Module):
    """Shared 3x3 conv(s) + ReLU, then 1x1 convs for A objectness logits and A * box_dim deltas per cell.

    `conv_dims` [-1] (the default) is one conv keeping `in_channels`; other values give a stack
    of convs with those widths (-1 = in_channels).
    """

    def __init__(self, *, in_channels: int, num_anchors: int, box_dim: int = 4,
                 conv_dims: Sequence[int] = (-1,), loss: RPNLoss | None = None) -> None:
        super().__init__()
        dims = [in_channels if d < 0 else int(d) for d in conv_dims]
        if len(dims) == 1:
            self.conv = nn.Conv2d(in_channels, dims[0], kernel_size=3, padding=1)
            convs = [self.conv]
        else:
            self.conv = nn.Sequential()
            prev = in_channels
            for i, d in enumerate(dims):
                self.conv.add_module(f"conv{i}", nn.Conv2d(prev, d, kernel_size=3, padding=1))
                self.conv.add_module(f"relu{i}", nn.ReLU())
                prev = d
            convs = [m for m in self.conv if isinstance(m, nn.Conv2d)]
        self.objectness_logits = nn.Conv2d(dims[-1], num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(dims[-1], num_anchors * box_dim, kernel_size=1)
        for layer in [*convs, self.objectness_logits, self.anchor_deltas]:
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level: logits (B, A, Hi, Wi) and deltas (B, A * box_dim, Hi, Wi)."""
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x))
            logits.append(self.objectness_logits(t))
            deltas.append(self.anchor_deltas(t))
        return logits, deltas


def find_top_proposals(proposals: Sequence[torch.Tensor], logits: Sequence[torch.Tensor],
                       image_sizes: Sequence[tuple[int, int]], *, nms_thresh: float, pre_nms_topk: int,
                       post_nms_topk: int, min_box_size: float, training: bool = False) -> list[Instances]:
    """Select proposals as detectron2's find_top_rpn_proposals does.

    proposals[l]: (B, R_l, 4) XYXY boxes of level l; logits[l]: (B, R_l). Per level keep the
    `pre_nms_topk` best; per image drop non-finite entries, clip to (h, w), drop boxes with a
    side <= `min_box_size`, NMS within each level, keep the `post_nms_topk` best. Returns one
    Instances per image with `proposal_boxes` (Boxes) and `objectness_logits` (N,), by
    decreasing logit.
    """
    device = proposals[0].device
    batch_idx = torch.arange(len(image_sizes), device=device)[:, None]
    top_boxes, top_scores, level_ids = [], [], []
    for level, (boxes_l, logits_l) in enumerate(zip(proposals, logits, strict=True)):
        k = min(logits_l.shape[1], pre_nms_topk)
        scores, idx = logits_l.topk(k, dim=1)
        top_boxes.append(boxes_l[batch_idx, idx])
        top_scores.append(scores)
        level_ids.append(torch.full((k,), level, dtype=torch.int64, device=device))
    all_boxes, all_scores, all_levels = torch.cat(top_boxes, 1), torch.cat(top_scores, 1), torch.cat(level_ids)
    results = []
    for n, image_size in enumerate(image_sizes):
        boxes, scores, lvl = all_boxes[n], all_scores[n], all_levels
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        if training and not bool(valid.all()):
            raise FloatingPointError("Predicted boxes or scores contain Inf/NaN. Training has diverged.")
        boxes, scores, lvl = boxes[valid], scores[valid], lvl[valid]
        clipped = Boxes(boxes)
        clipped.clip(image_size)
        keep = clipped.nonempty(threshold=min_box_size)
        boxes, scores, lvl = clipped.tensor[keep], scores[keep], lvl[keep]
        keep = batched_nms(boxes.float(), scores, lvl, nms_thresh)[:post_nms_topk]
        results.append(Instances(image_size, proposal_boxes=Boxes(boxes[keep]), objectness_logits=scores[keep]))
    return results


class RPN(nn.Module):
    """Anchors + StandardRPNHead + box decoding + proposal selection on `in_features`.

    forward(images, features) -> one Instances per image with `proposal_boxes` (XYXY_ABS in the
    padded-input frame, clipped to that image's (h, w) in `images.image_sizes`) and
    `objectness_logits` (N,) sorted decreasing. Top-k values are (train, test) pairs chosen by
    `self.training`. `loss` (an RPNLoss) enables `forward_with_losses` for training.
    """

    def __init__(self, *, in_features: Sequence[str], in_channels: int, strides: Sequence[int],
                 anchor_sizes: Sequence = ((32, 64, 128, 256, 512),),
                 anchor_aspect_ratios: Sequence = ((0.5, 1.0, 2.0),), anchor_offset: float = 0.0,
                 box_reg_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), pre_nms_topk: tuple[int, int] = (12000, 6000),
                 post_nms_topk: tuple[int, int] = (2000, 1000), nms_thresh: float = 0.7, min_box_size: float = 0.0,
                 conv_dims: Sequence[int] = (-1,), loss: RPNLoss | None = None) -> None:
        super().__init__()
        self.in_features = list(in_features)
        self.anchor_generator = DefaultAnchorGenerator(sizes=anchor_sizes, aspect_ratios=anchor_aspect_ratios,
                                                       strides=strides, offset=anchor_offset)
        num_anchors = set(self.anchor_generator.num_cell_anchors)
        if len(num_anchors) != 1:
            raise ValueError(f"every level needs the same number of anchors, got {num_anchors}")
        self.rpn_head = StandardRPNHead(in_channels=in_channels, num_anchors=num_anchors.pop(), conv_dims=conv_dims)
        self.box2box_transform = Box2BoxTransform(weights=tuple(box_reg_weights))
        self.pre_nms_topk = {True: int(pre_nms_topk[0]), False: int(pre_nms_topk[1])}
        self.post_nms_topk = {True: int(post_nms_topk[0]), False: int(post_nms_topk[1])}
        self.nms_thresh = float(nms_thresh)
        self.min_box_size = float(min_box_size)
        self.loss = loss

    def predict(self, features: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                                    list[torch.Tensor]]:
        """Head outputs flattened per level: anchors (R_l, 4), logits (B, R_l), deltas (B, R_l, 4).

        R_l = Hi * Wi * A, ordered (row, column, anchor) like the anchors.
        """
        maps = [features[f] for f in self.in_features]
        logits, deltas = self.rpn_head(maps)
        anchors = self.anchor_generator(maps)
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
        deltas = [x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
                  for x in deltas]
        return anchors, logits, deltas

    def decode(self, anchors: list[torch.Tensor], deltas: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level (B, R_l, 4) XYXY proposals from (R_l, 4) anchors and (B, R_l, 4) deltas."""
        out = []
        for anchors_l, deltas_l in zip(anchors, deltas, strict=True):
            b = deltas_l.shape[0]
            expanded = anchors_l.unsqueeze(0).expand(b, -1, -1).reshape(-1, 4)
            out.append(self.box2box_transform.apply_deltas(deltas_l.reshape(-1, 4), expanded).view(b, -1, 4))
        return out

    @torch.no_grad()
    def select(self, images: ImageList, anchors: list[torch.Tensor], logits: list[torch.Tensor],
               deltas: list[torch.Tensor]) -> list[Instances]:
        """Decode and pick the proposals (no gradient flows into them)."""
        return find_top_proposals(self.decode(anchors, [d.detach() for d in deltas]),
                                  [x.detach() for x in logits], images.image_sizes,
                                  nms_thresh=self.nms_thresh, pre_nms_topk=self.pre_nms_topk[self.training],
                                  post_nms_topk=self.post_nms_topk[self.training],
                                  min_box_size=self.min_box_size, training=self.training)

    def forward(self, images: ImageList, features: dict[str, torch.Tensor]) -> list[Instances]:
        """Proposals for each image of `images` from the backbone `features` (B, C, Hi, Wi)."""
        anchors, logits, deltas = self.predict(features)
        return self.select(images, anchors, logits, deltas)

    def forward_with_losses(self, images: ImageList, features: dict[str, torch.Tensor],
                            gt_instances: Sequence[Instances]) -> tuple[list[Instances], dict[str, torch.Tensor]]:
        """Proposals plus `loss_rpn_cls` and `loss_rpn_loc`; `gt_boxes` of each of `gt_instances` XYXY in the
        padded-input frame."""
        if self.loss is None:
            raise RuntimeError("this RPN was built without a loss (pass loss=RPNLoss(...))")
        anchors, logits, deltas = self.predict(features)
        labels, matched = self.loss.targets(anchors, [g.gt_boxes for g in gt_instances], images.image_sizes)
        losses = self.loss.losses(anchors, logits, deltas, labels, matched)
        return self.select(images, anchors, logits, deltas), losses
