"""Multi-scale deformable attention against a straightforward loop with manual bilinear sampling."""

from __future__ import annotations

import math

import pytest
import torch

from detic_cli.modeling.detr.ms_deform_attn import MSDeformAttn, ms_deform_attn_sample

SHAPES = [(5, 7), (3, 4), (2, 2)]


def _bilinear(grid: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """grid (H, W, D); (x, y) in [0, 1] of the grid extent; cells outside read zero (pixel-centre convention)."""
    h, w, d = grid.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(d, dtype=grid.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * grid[yy, xx]
    return out


def _reference(value, shapes, locations, weights):
    n, _, m, d = value.shape
    _, q, _, levels, points, _ = locations.shape
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(n, q, m, d, dtype=value.dtype)
    for b in range(n):
        for qi in range(q):
            for head in range(m):
                for lvl, (h, w) in enumerate(shapes):
                    grid = value[b, starts[lvl]:starts[lvl] + h * w, head].reshape(h, w, d)
                    for p in range(points):
                        x, y = locations[b, qi, head, lvl, p].tolist()
                        out[b, qi, head] += weights[b, qi, head, lvl, p] * _bilinear(grid, x, y)
    return out.reshape(n, q, m * d)


def test_sampling_equals_loop_reference():
    g = torch.Generator().manual_seed(0)
    n, q, m, d, p = 2, 3, 2, 4, 3
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(n, s, m, d, generator=g, dtype=torch.float64)
    # include points outside [0, 1] to exercise the zero padding
    locations = torch.rand(n, q, m, len(SHAPES), p, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(n, q, m, len(SHAPES), p, generator=g, dtype=torch.float64)
    got = ms_deform_attn_sample(value, SHAPES, locations, weights)
    torch.testing.assert_close(got, _reference(value, SHAPES, locations, weights), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("ref_dim", [2, 4])
def test_module_locations_and_output(ref_dim):
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=len(SHAPES), n_heads=2, n_points=3).double()
    n, q = 1, 4
    s = sum(h * w for h, w in SHAPES)
    query = torch.randn(n, q, 16, dtype=torch.float64)
    memory = torch.randn(n, s, 16, dtype=torch.float64)
    ref = torch.rand(n, q, len(SHAPES), ref_dim, dtype=torch.float64)
    mask = torch.zeros(n, s, dtype=torch.bool)
    mask[:, -3:] = True
    offsets = attn.sampling_offsets(query).view(n, q, 2, len(SHAPES), 3, 2)
    if ref_dim == 2:
        size = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float64)
        expected_loc = ref[:, :, None, :, None, :] + offsets / size[None, None, None, :, None, :]
    else:
        expected_loc = ref[:, :, None, :, None, :2] + offsets / 3 * ref[:, :, None, :, None, 2:] / 2
    torch.testing.assert_close(attn.sampling_locations(query, ref, SHAPES), expected_loc)
    value = attn.value_proj(memory).masked_fill(mask[..., None], 0.0).view(n, s, 2, 8)
    weights = attn.attention_weights(query).view(n, q, 2, -1).softmax(-1).view(n, q, 2, len(SHAPES), 3)
    expected = attn.output_proj(_reference(value, SHAPES, expected_loc, weights))
    torch.testing.assert_close(attn(query, ref, memory, SHAPES, mask), expected)
