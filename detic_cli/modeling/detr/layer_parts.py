"""The parts the Deformable DETR encoder and decoder layers share, returned as tuples so that each layer assigns
them to the attribute names of the original checkpoints (`self_attn` / `cross_attn`, `normN`, `linear1/2`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.modeling.detr.ms_deform_attn import MSDeformAttn


def deformable_attention_parts(*, d_model: int, n_levels: int, n_heads: int, n_points: int,
                               dropout: float) -> tuple[MSDeformAttn, nn.Dropout, nn.LayerNorm]:
    """(multi-scale deformable attention, its residual dropout, its post-norm) of width `d_model`."""
    attn = MSDeformAttn(d_model=d_model, n_levels=n_levels, n_heads=n_heads, n_points=n_points)
    return attn, nn.Dropout(dropout), nn.LayerNorm(d_model)


def ffn_parts(*, d_model: int, d_ffn: int,
              dropout: float) -> tuple[nn.Linear, nn.Dropout, nn.Linear, nn.Dropout, nn.LayerNorm]:
    """(linear1 d_model -> d_ffn, inner dropout, linear2 d_ffn -> d_model, residual dropout, post-norm)."""
    return (nn.Linear(d_model, d_ffn), nn.Dropout(dropout), nn.Linear(d_ffn, d_model), nn.Dropout(dropout),
            nn.LayerNorm(d_model))


def ffn_block(x: torch.Tensor, linear1: nn.Linear, inner_dropout: nn.Dropout, linear2: nn.Linear,
              dropout: nn.Dropout, norm: nn.LayerNorm) -> torch.Tensor:
    """Post-norm ReLU feed-forward of `ffn_parts`: norm(x + dropout(linear2(inner_dropout(relu(linear1(x))))))."""
    return norm(x + dropout(linear2(inner_dropout(F.relu(linear1(x))))))
