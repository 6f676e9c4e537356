"""Multi-scale deformable attention against a straightforward loop with manual bilinear sampling."""

from __future__ import annotations

import math

import pytest
import torch

from detic_cli.modeling.detr.ms_deform_attn import MSDeformAttn, ms_deform_attn_gather, ms_deform_attn_sample

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


@pytest.mark.parametrize("sample", [ms_deform_attn_sample, ms_deform_attn_gather], ids=["grid_sample", "gather"])
def test_sampling_equals_loop_reference(sample):
    g = torch.Generator().manual_seed(0)
    n, q, m, d, p = 2, 3, 2, 4, 3
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(n, s, m, d, generator=g, dtype=torch.float64)
    # include points outside [0, 1] to exercise the zero padding
    locations = torch.rand(n, q, m, len(SHAPES), p, 2, generator=g, dtype=torch.float64) * 1.4 - 0.2
    locations[0, 0, 0, :, 0] = torch.tensor([-3.0, 5.0], dtype=torch.float64)  # far outside: reads zeros only
    locations[0, 1, 1, :, 1] = torch.tensor([1.0, 0.0], dtype=torch.float64)  # exactly on the edges
    weights = torch.rand(n, q, m, len(SHAPES), p, generator=g, dtype=torch.float64)
    got = sample(value, SHAPES, locations, weights)
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


def test_gather_matches_grid_sample_in_float32_on_detr_sized_levels():
    """The inference sampler against the grid_sample one on one image's 4 levels (float32, 8 heads)."""
    g = torch.Generator().manual_seed(1)
    shapes = [(24, 20), (12, 10), (6, 5), (3, 3)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(2, s, 8, 32, generator=g)
    locations = torch.rand(2, 50, 8, len(shapes), 4, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(2, 50, 8, len(shapes), 4, generator=g).softmax(-1)
    torch.testing.assert_close(ms_deform_attn_gather(value, shapes, locations, weights),
                               ms_deform_attn_sample(value, shapes, locations, weights), rtol=1e-5, atol=1e-5)


def test_module_uses_gather_without_gradients_and_grid_sample_with():
    """Under no_grad the module's output equals the gather sampler's; with gradients it stays differentiable
    in the sampling offsets (grid_sample path), as training needs."""
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=len(SHAPES), n_heads=2, n_points=3)
    s = sum(h * w for h, w in SHAPES)
    query, memory = torch.randn(1, 4, 16), torch.randn(1, s, 16)
    ref = torch.rand(1, 4, len(SHAPES), 2)
    out = attn(query, ref, memory, SHAPES)
    out.sum().backward()
    assert attn.sampling_offsets.weight.grad is not None and attn.sampling_offsets.weight.grad.abs().sum() > 0
    with torch.no_grad():
        fast = attn(query, ref, memory, SHAPES)
        value = attn.value_proj(memory).view(1, s, 2, 8)
        weights = attn.attention_weights(query).view(1, 4, 2, -1).softmax(-1).view(1, 4, 2, len(SHAPES), 3)
        expected = attn.output_proj(ms_deform_attn_gather(value, SHAPES, attn.sampling_locations(query, ref, SHAPES),
                                                          weights))
    assert torch.equal(fast, expected)
    torch.testing.assert_close(fast, out.detach(), rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_attention_weights_alone():
    """Training with frozen value and offset projections: the attention weights still get gradients."""
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=len(SHAPES), n_heads=2, n_points=3)
    for module in (attn.value_proj, attn.sampling_offsets):
        module.requires_grad_(False)
    s = sum(h * w for h, w in SHAPES)
    out = attn(torch.randn(1, 4, 16), torch.rand(1, 4, len(SHAPES), 2), torch.randn(1, s, 16), SHAPES)
    out.sum().backward()
    assert attn.attention_weights.weight.grad is not None and attn.attention_weights.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("ref_dim", [2, 4])
def test_reference_points_broadcast_over_levels(ref_dim):
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=len(SHAPES), n_heads=2, n_points=3)
    query, ref = torch.randn(2, 4, 16), torch.rand(2, 4, 1, ref_dim)
    with torch.no_grad():
        torch.testing.assert_close(attn.sampling_locations(query, ref, SHAPES),
                                   attn.sampling_locations(query, ref.expand(2, 4, len(SHAPES), ref_dim), SHAPES),
                                   rtol=0, atol=0)
    with pytest.raises(ValueError, match="2 or 4 values"):
        attn.sampling_locations(query, torch.rand(2, 4, len(SHAPES), 3), SHAPES)
