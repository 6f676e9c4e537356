"""The inference sampler's helpers: per-level values spread to the sampling points, the zero-bordered table."""

from __future__ import annotations

import torch

from detic_cli.modeling.detr.deform_gather import padded_table, spread_levels


def test_spread_levels_repeats_each_levels_values_for_every_head_and_point():
    per_level = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)  # (B, L, K)
    spread = spread_levels(per_level, heads=4, points=5).view(2, 4, 3, 5, 2)
    assert torch.equal(spread, per_level[:, None, :, None, :].expand(2, 4, 3, 5, 2))


def test_padded_table_borders_every_level_with_zeros():
    shapes = [(3, 4), (2, 2)]
    value = torch.randn(2, 16, 3, 5)  # (N, S, M, D)
    table = padded_table(value, shapes).view(2, 3, -1, 5)  # (N, M, S', D)
    first = table[:, :, :6 * 7].view(2, 3, 6, 7, 5)
    second = table[:, :, 6 * 7:].view(2, 3, 5, 5, 5)
    assert torch.equal(first[:, :, 1:4, 1:5], value[:, :12].view(2, 3, 4, 3, 5).permute(0, 3, 1, 2, 4))
    assert torch.equal(second[:, :, 1:3, 1:3], value[:, 12:].view(2, 2, 2, 3, 5).permute(0, 3, 1, 2, 4))
    first[:, :, 1:4, 1:5] = 0
    second[:, :, 1:3, 1:3] = 0
    assert not table.any()
