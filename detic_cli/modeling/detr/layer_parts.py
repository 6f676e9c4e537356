"""The parts the Deformable DETR encoder and decoder layers share, returned as tuples so that each layer assigns
them to the attribute names of the original checkpoints (`self_attn` / `cross_attn`, `normN`, `linear1/2`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.layers.mlp import row_chunks
from detic_cli.modeling.detr.ms_deform_attn import MSDeformAttn

# Rows per chunk of the inference feed-forward: a chunk's hidden activations (1024 x d_ffn floats, 4 MB for the
# encoder) stay in cache from linear1 to linear2 (13294 encoder tokens: ~143 -> ~85 ms per layer; the same values
# with MKL's GEMM, as `mlp.row_chunks` says: measured, and checked bit for bit by the tests).
FFN_CHUNK = 1024


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
    """Post-norm ReLU feed-forward of `ffn_parts`: norm(x + dropout(linear2(inner_dropout(relu(linear1(x)))))).
    x: (..., d_model). CPU inference runs it over chunks of `FFN_CHUNK` rows (each row's values unchanged)."""
    if not fast_path_allowed(x) or dropout.training or inner_dropout.training:
        return norm(x + dropout(linear2(inner_dropout(F.relu(linear1(x))))))
    rows = x.reshape(-1, x.shape[-1])
    out = torch.empty_like(rows)
    for start, stop in row_chunks(rows.shape[0], FFN_CHUNK):
        part = rows[start:stop]
        out[start:stop] = norm(part + linear2(linear1(part).relu_()))
    return out.view(x.shape)
