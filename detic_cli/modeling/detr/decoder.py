"""Deformable DETR decoder with iterative box refinement."""

from __future__ import annotations

import copy

import torch
from torch import nn

from detic_cli.modeling.detr.box_ops import inverse_sigmoid
from detic_cli.modeling.detr.layer_parts import deformable_attention_parts, ffn_block, ffn_parts

__all__ = ["DeformableDecoder", "DeformableDecoderLayer"]


class DeformableDecoderLayer(nn.Module):
    """Post-norm: self-attention (nn.MultiheadAttention) -> norm2, deformable cross-attention -> norm1, FFN -> norm3."""

    def __init__(self, *, d_model: int = 256, d_ffn: int = 1024, dropout: float = 0.1, n_levels: int = 4,
                 n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        self.cross_attn, self.dropout1, self.norm1 = deformable_attention_parts(
            d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points, dropout=dropout)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1, self.dropout3, self.linear2, self.dropout4, self.norm3 = ffn_parts(
            d_model=d_model, d_ffn=d_ffn, dropout=dropout)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor, reference_points: torch.Tensor,
                memory: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                padding_mask: torch.Tensor | None) -> torch.Tensor:
        """tgt, query_pos: (N, Q, C); reference_points: (N, Q, L, 4) cxcywh in [0, 1]; memory: (N, S, C)."""
        q = k = (tgt + query_pos).transpose(0, 1)
        tgt2 = self.self_attn(q, k, tgt.transpose(0, 1))[0].transpose(0, 1)
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.cross_attn(tgt + query_pos, reference_points, memory, spatial_shapes, padding_mask)
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        return ffn_block(tgt, self.linear1, self.dropout3, self.linear2, self.dropout4, self.norm3)


class DeformableDecoder(nn.Module):
    """`num_layers` decoder layers (keys `layers.{i}`); after each, `bbox_embed[i]` refines the reference boxes.

    `bbox_embed` and `class_embed` are ModuleLists owned by the detector and attached with
    `attach_heads` (the original shares them, so the checkpoint holds them under both prefixes).
    """

    def __init__(self, layer: DeformableDecoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.bbox_embed: nn.ModuleList | None = None
        self.class_embed: nn.ModuleList | None = None

    def attach_heads(self, *, bbox_embed: nn.ModuleList | None, class_embed: nn.ModuleList | None) -> None:
        """Register the shared prediction heads (box refinement needs bbox_embed; two-stage needs both)."""
        self.bbox_embed = bbox_embed
        self.class_embed = class_embed

    def forward(self, tgt: torch.Tensor, reference_points: torch.Tensor, memory: torch.Tensor,
                spatial_shapes: list[tuple[int, int]], valid_ratios: torch.Tensor, query_pos: torch.Tensor,
                padding_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run every layer; returns (hs (num_layers, N, Q, C), references (num_layers, N, Q, 4)).

        reference_points: (N, Q, 4) cxcywh in [0, 1] of the valid image area; references[i] is the
        box after layer i's refinement (sigmoid space, detached as in the original).
        """
        if reference_points.shape[-1] != 4:
            raise ValueError("this decoder expects (cx, cy, w, h) reference boxes (two-stage Deformable DETR)")
        output, states, references = tgt, [], []
        ratios = torch.cat([valid_ratios, valid_ratios], -1)[:, None]
        for i, layer in enumerate(self.layers):
            reference_input = reference_points[:, :, None] * ratios
            output = layer(output, query_pos, reference_input, memory, spatial_shapes, padding_mask)
            if self.bbox_embed is not None:
                refined = self.bbox_embed[i](output) + inverse_sigmoid(reference_points)
                reference_points = refined.sigmoid().detach()
            states.append(output)
            references.append(reference_points)
        return torch.stack(states), torch.stack(references)
