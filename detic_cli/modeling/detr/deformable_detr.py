"""The Deformable DETR network (two-stage, iterative box refinement) on a masked multi-scale backbone.

Module layout and names follow the original so checkpoints load unchanged: `transformer.*`,
`class_embed.{i}`, `bbox_embed.{i}.layers.{j}`, `input_proj.{l}.{0: conv, 1: GroupNorm}`,
`backbone.0.backbone.*` (the detectron2-layout ResNet) and `backbone.1` (the parameter-free sine
position encoding). `class_embed`/`bbox_embed` are shared with `transformer.decoder`, so a state dict
holds them under both prefixes; `transformer` is registered first, so on loading the
`class_embed.*`/`bbox_embed.*` copies are applied last and win, exactly as in the original.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.detr.box_ops import MLP, inverse_sigmoid
from detic_cli.modeling.detr.position_encoding import PositionEmbeddingSine
from detic_cli.modeling.detr.transformer import DeformableTransformer, TransformerOutput

__all__ = ["DeformableDETR", "MaskedBackbone", "resize_mask"]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) bool padding mask -> (N, h, w) by nearest-neighbour interpolation."""
    return F.interpolate(mask[None].float(), size=size).to(torch.bool)[0]


class MaskedBackbone(nn.Module):
    """A Backbone (key `backbone.*`) whose outputs are returned fine to coarse with their padding masks."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_channels = [backbone.out_channels[f] for f in backbone.out_features]

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """images: (N, 3, H, W) normalised, padded; mask: (N, H, W) True on padding.
        Returns [(features (N, C_l, H_l, W_l), mask (N, H_l, W_l))] sorted by feature name (res3, res4, res5)."""
        features = self.backbone(images)
        return [(features[name], resize_mask(mask, tuple(features[name].shape[-2:]))) for name in sorted(features)]


def _projection(in_channels: int, hidden_dim: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, hidden_dim, kernel_size=kernel_size, stride=stride,
                                   padding=kernel_size // 2), nn.GroupNorm(32, hidden_dim))


class DeformableDETR(nn.Module):
    """Images + padding mask -> per-query class logits and normalised boxes.

    The backbone levels are projected to `hidden_dim` by 1x1 conv + GroupNorm(32); extra levels come
    from a 3x3 stride-2 conv (+ GroupNorm) on the last backbone map, then on the previous extra level.
    """

    def __init__(self, *, backbone: Backbone, transformer: DeformableTransformer, num_classes: int,
                 num_feature_levels: int = 4) -> None:
        super().__init__()
        hidden_dim = transformer.d_model
        self.transformer = transformer
        num_pred = transformer.decoder.num_layers + 1  # the last pair scores the two-stage proposals
        self.class_embed = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_pred))
        head = MLP(input_dim=hidden_dim, hidden_dim=hidden_dim, output_dim=4, num_layers=3)
        self.bbox_embed = nn.ModuleList(copy.deepcopy(head) for _ in range(num_pred))
        masked = MaskedBackbone(backbone)
        channels = masked.num_channels
        if num_feature_levels < len(channels):
            raise ValueError(f"num_feature_levels {num_feature_levels} < {len(channels)} backbone outputs")
        projections = [_projection(c, hidden_dim, 1, 1) for c in channels]
        extra_in = channels[-1]
        for _ in range(num_feature_levels - len(channels)):
            projections.append(_projection(extra_in, hidden_dim, 3, 2))
            extra_in = hidden_dim
        self.input_proj = nn.ModuleList(projections)
        self.backbone = nn.Sequential(masked, PositionEmbeddingSine(num_pos_feats=hidden_dim // 2))
        self.transformer.decoder.attach_heads(bbox_embed=self.bbox_embed, class_embed=self.class_embed)

    def _levels(self, images: torch.Tensor, mask: torch.Tensor):
        masked, position = self.backbone[0], self.backbone[1]
        features = masked(images, mask)
        srcs = [self.input_proj[i](f) for i, (f, _) in enumerate(features)]
        masks = [m for _, m in features]
        pos = [position(m).to(f.dtype) for f, m in features]
        for level in range(len(features), len(self.input_proj)):
            src = self.input_proj[level](features[-1][0] if level == len(features) else srcs[-1])
            level_mask = resize_mask(mask, tuple(src.shape[-2:]))
            srcs.append(src)
            masks.append(level_mask)
            pos.append(position(level_mask).to(src.dtype))
        return srcs, masks, pos

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, H, W) normalised, zero-padded at the bottom/right; mask: (N, H, W) True on padding.

        Returns {"pred_logits": (N, Q, classes) logits of the last decoder layer, "pred_boxes":
        (N, Q, 4) cxcywh in [0, 1] relative to each image's own (unpadded) size}.
        """
        out: TransformerOutput = self.transformer(*self._levels(images, mask))
        last = out.hs.shape[0] - 1
        reference = out.init_reference if last == 0 else out.inter_references[last - 1]
        logits = self.class_embed[last](out.hs[last])
        boxes = (self.bbox_embed[last](out.hs[last]) + inverse_sigmoid(reference)).sigmoid()
        return {"pred_logits": logits, "pred_boxes": boxes}
