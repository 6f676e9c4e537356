"""Deformable DETR encoder: deformable self-attention over all feature levels."""

from __future__ import annotations

import copy

import torch
from torch import nn

from detic_cli.modeling.detr.layer_parts import deformable_attention_parts, ffn_block, ffn_parts

__all__ = ["DeformableEncoder", "DeformableEncoderLayer", "encoder_reference_points"]


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: x = norm1(x + attn(x + pos)); x = norm2(x + linear2(relu(linear1(x))))."""

    def __init__(self, *, d_model: int = 256, d_ffn: int = 1024, dropout: float = 0.1, n_levels: int = 4,
                 n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        self.self_attn, self.dropout1, self.norm1 = deformable_attention_parts(
            d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points, dropout=dropout)
        self.linear1, self.dropout2, self.linear2, self.dropout3, self.norm2 = ffn_parts(
            d_model=d_model, d_ffn=d_ffn, dropout=dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: torch.Tensor | None) -> torch.Tensor:
        """src, pos: (N, S, C); reference_points: (N, S, L, 2); padding_mask: (N, S) True on padding."""
        src2 = self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask)
        src = self.norm1(src + self.dropout1(src2))
        return ffn_block(src, self.linear1, self.dropout2, self.linear2, self.dropout3, self.norm2)


def encoder_reference_points(spatial_shapes: list[tuple[int, int]], valid_ratios: torch.Tensor) -> torch.Tensor:
    """Cell centres of every level as reference points for every level.

    valid_ratios: (N, L, 2) valid (w, h) fraction of each level's grid. Returns (N, S, L, 2) (x, y):
    each cell centre normalised by its own level's valid extent, then scaled by each level's ratio.
    """
    device = valid_ratios.device
    points = []
    for level, (h, w) in enumerate(spatial_shapes):
        ref_y, ref_x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                                      torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                                      indexing="ij")
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * h)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * w)
        points.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


class DeformableEncoder(nn.Module):
    """`num_layers` copies of a DeformableEncoderLayer (keys `layers.{i}`)."""

    def __init__(self, layer: DeformableEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: torch.Tensor, spatial_shapes: list[tuple[int, int]], valid_ratios: torch.Tensor,
                pos: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """src, pos: (N, S, C) flattened levels; valid_ratios: (N, L, 2). Returns memory (N, S, C)."""
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios)
        out = src
        for layer in self.layers:
            out = layer(out, pos, reference_points, spatial_shapes, padding_mask)
        return out
