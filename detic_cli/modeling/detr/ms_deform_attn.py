"""Multi-scale deformable attention (Zhu et al., Deformable DETR) in plain PyTorch.

The sampling is bilinear with zero padding outside each level's grid, at pixel-centre coordinates
(`grid_sample(align_corners=False)`), which is what the original CUDA kernel computes too, so this
path runs anywhere (CPU, CUDA) and gives the reference numbers.

Two equivalent samplers: `ms_deform_attn_sample` (one `grid_sample` per level, then a weighted sum
over the stacked samples; used when gradients are needed, as the original's PyTorch path) and
`deform_gather.ms_deform_attn_gather` (inference: one weighted gather-sum over a zero-bordered value table;
same numbers up to float summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.modeling.detr.deform_gather import ms_deform_attn_gather, point_sizes, spread_levels

__all__ = ["MSDeformAttn", "ms_deform_attn_gather", "ms_deform_attn_sample"]


def ms_deform_attn_sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of bilinear samples of `value` at `sampling_locations`.

    value: (N, S, M, D), S = sum of H_l * W_l over levels (row-major per level), M heads of D channels.
    spatial_shapes: [(H_l, W_l)] per level, in the order the levels are concatenated in S.
    sampling_locations: (N, Q, M, L, P, 2) as (x, y) in [0, 1] of each level's grid
        (0 = left/top edge, 1 = right/bottom edge); points outside read zeros.
    attention_weights: (N, Q, M, L, P), normally softmax-normalised over L * P.
    Returns (N, Q, M * D).
    """
    n, _, m, d = value.shape
    _, q, _, num_levels, p, _ = sampling_locations.shape
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        value_l = per_level[level].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # (N, Q, M, P, 2) -> (N*M, Q, P, 2)
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (N*M, 1, Q, L*P)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, q, num_levels * p)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)  # (N*M, D, Q)
    return out.view(n, m * d, q).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Each query attends to `n_points` sampled points per head and level around its reference point.

    Keys: `sampling_offsets`, `attention_weights`, `value_proj`, `output_proj` (nn.Linear each).
    """

    def __init__(self, *, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)

    def sampling_locations(self, query: torch.Tensor, reference_points: torch.Tensor,
                           spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """(N, Q, M, L, P, 2) sampling points in [0, 1] level coordinates (see `forward` for the reference forms)."""
        n, q, _ = query.shape
        m, p = self.n_heads, self.n_points
        offsets = self.sampling_offsets(query).view(n * q, -1)  # (N * Q, M * L * P * 2), as (M, L, P, 2)
        shape = (n, q, m, self.n_levels, p, 2)
        size = reference_points.shape[-1]
        if size not in (2, 4):
            raise ValueError(f"reference_points must end in 2 or 4 values, got {tuple(reference_points.shape)}")
        refs = reference_points.expand(n, q, self.n_levels, size).reshape(n * q, self.n_levels, size)
        if size == 2:
            shapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
            normalizer = point_sizes(shapes, m, p, query.dtype, query.device)
            return (offsets / normalizer + spread_levels(refs, m, p)).view(shape)
        centres, sizes = spread_levels(refs[..., :2], m, p), spread_levels(refs[..., 2:], m, p)
        return (centres + offsets / p * sizes * 0.5).view(shape)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, input_flatten: torch.Tensor,
                spatial_shapes: list[tuple[int, int]], padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Deformable attention of `query` over the flattened multi-level `input_flatten`.

        query: (N, Q, C). input_flatten: (N, S, C), levels concatenated as in `spatial_shapes`.
        reference_points: (N, Q, L, 2) centres (x, y) in [0, 1] per level, or (N, Q, L, 4) boxes
            (cx, cy, w, h) in [0, 1]: points are then offset by (offset / n_points) * (w, h) / 2.
        padding_mask: (N, S) bool, True at padded positions (their values are zeroed).
        Returns (N, Q, C).
        """
        n, s, _ = input_flatten.shape
        if sum(h * w for h, w in spatial_shapes) != s:
            raise ValueError(f"spatial_shapes {spatial_shapes} do not add up to {s} input positions")
        value = self.value_proj(input_flatten)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, s, self.n_heads, self.d_model // self.n_heads)
        q = query.shape[1]
        weights = self.attention_weights(query).view(n, q, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(n, q, self.n_heads, self.n_levels, self.n_points)
        locations = self.sampling_locations(query, reference_points, spatial_shapes)
        needs_grad = torch.is_grad_enabled() and (value.requires_grad or locations.requires_grad
                                                   or weights.requires_grad)
        sample = ms_deform_attn_sample if needs_grad else ms_deform_attn_gather
        return self.output_proj(sample(value, spatial_shapes, locations, weights))
