"""Multi-scale deformable attention (Zhu et al., Deformable DETR) in plain PyTorch.

The sampling is bilinear with zero padding outside each level's grid, at pixel-centre coordinates
(`grid_sample(align_corners=False)`), which is what the original CUDA kernel computes too, so this
path runs anywhere (CPU, CUDA) and gives the reference numbers.

Two equivalent samplers: `ms_deform_attn_sample` (one `grid_sample` per level, then a weighted sum
over the stacked samples; used when gradients are needed, as the original's PyTorch path) and
`ms_deform_attn_gather` (inference: the 4 bilinear corners of every point become indices and weights
into one flattened value table, summed by a single `embedding_bag`, so no (N*M, D, Q, L*P) sample
tensor is ever built; same numbers up to float summation order).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

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


@lru_cache(maxsize=64)
def _level_constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small per-level tensor (level sizes, widths, ...), made once per (values, dtype, device): building
    it on every call would copy from the host each time, a synchronising copy on CUDA."""
    return torch.tensor(values, dtype=dtype, device=device)


def _padded_table(value: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
    """(N, S, M, D) -> (N * M * S', D): per (image, head) every level with a zero border (one cell at the
    top/left, two at the bottom/right), (H_l + 3) x (W_l + 3) row-major, levels concatenated (S' cells)."""
    n, _, m, d = value.shape
    levels = value.split([h * w for h, w in spatial_shapes], dim=1)
    padded = [F.pad(x.permute(0, 2, 3, 1).reshape(n, m * d, h, w), (1, 2, 1, 2)).flatten(2)
              for x, (h, w) in zip(levels, spatial_shapes)]
    return torch.cat(padded, 2).view(n, m, d, -1).transpose(2, 3).reshape(-1, d)


def _corners(spatial_shapes: list[tuple[int, int]], sampling_locations: torch.Tensor,
             attention_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `_padded_table` and weights of the 4 bilinear corners of every sampling point.

    sampling_locations: (N, Q, M, L, P, 2) (x, y) in [0, 1] of each level; attention_weights:
    (N, Q, M, L, P). Returns (rows, weights), each (N, Q, M, L * P * 4). Pixel positions follow
    grid_sample(align_corners=False), rounded as its CPU kernel does: x_px = (g + 1) * (W / 2) - 0.5,
    g = 2 * x - 1. A position is clamped to [-1, W] (and [-1, H]): every corner then lies in the
    level's zero border or inside, and a point clamped there had all its corners outside (zero values).
    """
    n, q, m, num_levels, p, _ = sampling_locations.shape
    device, dtype = sampling_locations.device, sampling_locations.dtype
    wh = _level_constant(tuple((w, h) for h, w in spatial_shapes), dtype, device).view(-1, 1, 2)
    pos = (2 * sampling_locations - 1 + 1) * (wh / 2) - 0.5
    pos = pos.clamp(min=-1.0).minimum(wh)
    low = pos.floor()
    frac = pos - low
    total = sum((h + 3) * (w + 3) for h, w in spatial_shapes)
    itype = torch.int32 if n * m * total < 2**31 else torch.int64  # int32 rows: half the index traffic
    width = _level_constant(tuple(w + 3 for _, w in spatial_shapes), itype, device)
    sizes = _level_constant(tuple((h + 3) * (w + 3) for h, w in spatial_shapes), itype, device)
    starts = torch.cumsum(sizes, 0, dtype=itype) - sizes
    cell = low.to(itype) + 1  # column / row in the padded level, in [0, W + 1]
    row = (cell[..., 1] * width.view(-1, 1) + cell[..., 0] + starts.view(-1, 1)).view(n, q, m, -1)
    base = (torch.arange(n, dtype=itype, device=device).view(n, 1, 1) * m
            + torch.arange(m, dtype=itype, device=device).view(1, 1, m)) * total
    corner = torch.stack((torch.zeros_like(width), torch.ones_like(width), width, width + 1), -1)  # (L, 4)
    rows = (row + base.unsqueeze(-1)).view(n, q, m, num_levels, p, 1) + corner.view(num_levels, 1, 4)
    wx = torch.stack((1 - frac[..., 0], frac[..., 0]), -1)
    wy = torch.stack((1 - frac[..., 1], frac[..., 1]), -1) * attention_weights.unsqueeze(-1)
    weights = wy.unsqueeze(-1) * wx.unsqueeze(-2)
    return rows.view(n, q, m, -1), weights.view(n, q, m, -1)


def ms_deform_attn_gather(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """`ms_deform_attn_sample`'s result (same shapes and conventions) as one weighted gather-sum.

    Every (image, query, head) is one bag of L * P * 4 rows of the zero-bordered value table
    (`_padded_table`), weighted by attention weight x bilinear weight and summed by `F.embedding_bag`:
    memory O(N * Q * M * L * P * 4) indices instead of the stacked samples' O(N * M * D * Q * L * P).
    """
    n, _, m, d = value.shape
    q = sampling_locations.shape[1]
    rows, weights = _corners(spatial_shapes, sampling_locations, attention_weights)
    table = _padded_table(value, spatial_shapes)
    out = F.embedding_bag(rows.view(n * q * m, -1), table, mode="sum",
                          per_sample_weights=weights.reshape(n * q * m, -1).to(table.dtype))
    return out.view(n, q, m * d)


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
        offsets = self.sampling_offsets(query).view(n, q, self.n_heads, self.n_levels, self.n_points, 2)
        if reference_points.shape[-1] == 2:
            normalizer = _level_constant(tuple((w, h) for h, w in spatial_shapes), query.dtype, query.device)
            return reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        if reference_points.shape[-1] == 4:
            return (reference_points[:, :, None, :, None, :2]
                    + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5)
        raise ValueError(f"reference_points must end in 2 or 4 values, got {tuple(reference_points.shape)}")

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
        needs_grad = torch.is_grad_enabled() and (value.requires_grad or locations.requires_grad)
        sample = ms_deform_attn_sample if needs_grad else ms_deform_attn_gather
        return self.output_proj(sample(value, spatial_shapes, locations, weights))
