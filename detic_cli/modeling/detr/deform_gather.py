"""Inference sampler of multi-scale deformable attention (bilinear samples as one weighted gather-sum), and the
per-level spreading of constants it shares with the module's sampling locations (training included).

The 4 bilinear corners of every sampling point become rows of one zero-bordered value table and weights
(attention weight x bilinear weight), summed by a single `embedding_bag`: no (N*M, D, Q, L*P) sample tensor
is built. The per-point arithmetic runs on (N * Q, M * L * P) tensors against per-level constants expanded
to the same width once per shape (broadcasting a (L, 1, 2) constant over (..., L, P, 2) runs element by
element, ~5x slower).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["corners", "ms_deform_attn_gather", "padded_table", "point_sizes", "spread_levels"]

Shapes = tuple[tuple[int, int], ...]


@lru_cache(maxsize=64)
def _spread_index(levels: int, heads: int, points: int, per_level: int, device: torch.device) -> torch.Tensor:
    """(heads * levels * points * per_level,) column of a (..., levels * per_level) tensor that each element of
    a (..., heads, levels, points, per_level) tensor reads: its own level's values, whatever head and point."""
    level = torch.arange(levels, device=device).view(1, levels, 1, 1) * per_level
    return (level + torch.arange(per_level, device=device).view(1, 1, 1, per_level)).expand(
        heads, levels, points, per_level).reshape(-1)


def spread_levels(per_level: torch.Tensor, heads: int, points: int) -> torch.Tensor:
    """(B, L, K) per-level values -> (B, heads * L * points * K): each level's K values repeated for every head
    and point, laid out as (heads, L, points, K) like the sampling offsets (one gather)."""
    b, levels, k = per_level.shape
    index = _spread_index(levels, heads, points, k, per_level.device)
    return torch.gather(per_level.reshape(b, levels * k), 1, index.view(1, -1).expand(b, -1))


def _spread(per_level: list, heads: int, points: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Python per-level values [L][K] -> (heads * L * points * K,) as `spread_levels` lays them out."""
    return spread_levels(torch.tensor(per_level, dtype=dtype, device=device)[None], heads, points)[0]


@lru_cache(maxsize=16)
def point_sizes(shapes: Shapes, heads: int, points: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(heads * L * points * 2,) the (W_l, H_l) of each sampling point's level, in the offsets' (M, L, P, 2)
    order; made once per shape (building it per call would copy from the host, a synchronising copy on CUDA)."""
    return _spread([(w, h) for h, w in shapes], heads, points, dtype, device)


@lru_cache(maxsize=16)
def _point_constants(shapes: Shapes, heads: int, points: int, dtype: torch.dtype, itype: torch.dtype,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sampling point (heads * L * points of them, in the offsets' order): (W_l, H_l) float pairs
    (`point_sizes`); padded level width W_l + 3; first table row of its (head, level); corner offsets
    (0, 1, W_l + 3, W_l + 4)."""
    sizes = [(h + 3) * (w + 3) for h, w in shapes]
    total, starts = sum(sizes), [sum(sizes[:i]) for i in range(len(shapes))]
    wh = point_sizes(shapes, heads, points, dtype, device)
    width = _spread([[w + 3] for _, w in shapes], heads, points, itype, device)
    first = _spread([[s] for s in starts], heads, points, itype, device) + torch.arange(
        heads, dtype=itype, device=device).repeat_interleave(len(shapes) * points) * total
    corners = torch.stack([torch.zeros_like(width), torch.ones_like(width), width, width + 1], -1)
    return wh, width, first, corners


def padded_table(value: torch.Tensor, spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
    """(N, S, M, D) -> (N * M * S', D): per (image, head) every level with a zero border (one cell at the
    top/left, two at the bottom/right), (H_l + 3) x (W_l + 3) row-major, levels concatenated (S' cells)."""
    n, _, m, d = value.shape
    total = sum((h + 3) * (w + 3) for h, w in spatial_shapes)
    table = value.new_empty((n, m, total, d))
    start = 0
    for level, (h, w) in zip(value.split([h * w for h, w in spatial_shapes], dim=1), spatial_shapes, strict=True):
        cells = table[:, :, start:start + (h + 3) * (w + 3)].view(n, m, h + 3, w + 3, d)
        cells[:, :, 1:h + 1, 1:w + 1] = level.reshape(n, h, w, m, d).permute(0, 3, 1, 2, 4)
        for border in (cells[:, :, 0], cells[:, :, h + 1:], cells[:, :, 1:h + 1, 0], cells[:, :, 1:h + 1, w + 1:]):
            border.zero_()
        start += (h + 3) * (w + 3)
    return table.view(-1, d)


def corners(spatial_shapes: list[tuple[int, int]], sampling_locations: torch.Tensor,
            attention_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `padded_table` and weights of the 4 bilinear corners of every sampling point.

    sampling_locations: (N, Q, M, L, P, 2) (x, y) in [0, 1] of each level; attention_weights:
    (N, Q, M, L, P). Returns (rows, weights), each (N, Q, M, L * P * 4), corners (top-left, top-right,
    bottom-left, bottom-right). Pixel positions follow grid_sample(align_corners=False), rounded as its CPU
    kernel does: x_px = (g + 1) * (W / 2) - 0.5, g = 2 * x - 1. A position is clamped to [-1, W] (and
    [-1, H]): every corner then lies in the level's zero border or inside, and a point clamped there had all
    its corners outside (zero values).
    """
    n, q, m, num_levels, p, _ = sampling_locations.shape
    shapes = tuple((int(h), int(w)) for h, w in spatial_shapes)
    total = sum((h + 3) * (w + 3) for h, w in shapes)
    itype = torch.int32 if n * m * total < 2**31 else torch.int64  # int32 rows: half the index traffic
    wh, width, first, corner = _point_constants(shapes, m, p, sampling_locations.dtype, itype,
                                                sampling_locations.device)
    pos = (2 * sampling_locations.reshape(n * q, -1) - 1 + 1).mul_(wh / 2).sub_(0.5)
    torch.minimum(pos.clamp_(min=-1.0), wh, out=pos)
    low = pos.floor()
    frac = pos.sub_(low).view(n * q, -1, 2)  # (N * Q, M * L * P, 2) bilinear fractions
    cell = low.to(itype).add_(1).view(n * q, -1, 2)  # column / row in the padded level, in [0, W + 1]
    row = cell[..., 1] * width + cell[..., 0] + first
    if n > 1:
        row = row.view(n, -1).add_(torch.arange(n, dtype=itype, device=row.device).view(n, 1) * (m * total))
    rows = row.view(n * q, -1, 1).expand(-1, -1, 4).contiguous().add_(corner)  # ~2x faster than broadcasting
    weights = torch.empty_like(rows, dtype=frac.dtype)
    fx, fy, a = frac[..., 0], frac[..., 1], attention_weights.reshape(n * q, -1)
    ex, top, bottom = 1 - fx, (1 - fy) * a, fy * a
    for k, (wy, wx) in enumerate(((top, ex), (top, fx), (bottom, ex), (bottom, fx))):
        torch.mul(wy, wx, out=weights[..., k])
    return rows.view(n, q, m, -1), weights.view(n, q, m, -1)


def ms_deform_attn_gather(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                          sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """`ms_deform_attn_sample`'s result (same shapes and conventions) as one weighted gather-sum.

    Every (image, query, head) is one bag of L * P * 4 rows of the zero-bordered value table
    (`padded_table`), weighted by attention weight x bilinear weight and summed by `F.embedding_bag`:
    memory O(N * Q * M * L * P * 4) indices instead of the stacked samples' O(N * M * D * Q * L * P).
    """
    n, _, m, d = value.shape
    q = sampling_locations.shape[1]
    rows, weights = corners(spatial_shapes, sampling_locations, attention_weights)
    table = padded_table(value, spatial_shapes)
    out = F.embedding_bag(rows.view(n * q * m, -1), table, mode="sum",
                          per_sample_weights=weights.reshape(n * q * m, -1).to(table.dtype))
    return out.view(n, q, m * d)
