"""roi_align_levels (one gather over channels-last pyramid rows) against torchvision's roi_align per level."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from detic_cli.layers.roi_align_levels import PyramidTable, roi_align_levels

SCALES = [1 / 8, 1 / 16, 1 / 32]


def _features() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(2, 8, 40 // 2**i, 48 // 2**i, generator=g) for i in range(3)]


def _rois() -> torch.Tensor:
    """Boxes of many sizes and aspect ratios over a 320 x 384 input, plus degenerate and border ones."""
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(90, 2, generator=g) * 400 - 30
    wh = torch.rand(90, 2, generator=g) ** 3 * 300 + 0.2
    rois = torch.cat([torch.randint(0, 2, (90, 1), generator=g).float(), xy, xy + wh], 1)
    edge_cases = torch.tensor([[0, 10.0, 10, 10, 10],  # empty box
                               [1, 50.0, 20, 50, 90],  # zero width
                               [1, -90.0, -50, -40, -20],  # wholly outside
                               [0, 300.0, 250, 420, 500],  # past the bottom-right edge
                               [1, 0.0, 0, 384, 320],  # the whole image
                               [0, 2.0, 100, 380, 104]])  # long and thin
    return torch.cat([rois, edge_cases])


@pytest.mark.parametrize(("aligned", "sampling_ratio"), [(True, 0), (False, 0), (True, 2)])
@pytest.mark.parametrize("output_size", [7, 14])
def test_equals_torchvision_per_level(aligned, sampling_ratio, output_size):
    features, rois = _features(), _rois()
    levels = torch.randint(0, 3, (len(rois),), generator=torch.Generator().manual_seed(2))
    expected = torch.zeros(len(rois), 8, output_size, output_size)
    for level, (feature, scale) in enumerate(zip(features, SCALES)):
        index = (levels == level).nonzero().squeeze(1)
        expected[index] = roi_align(feature, rois[index], (output_size, output_size), scale, sampling_ratio, aligned)
    got = roi_align_levels(PyramidTable(features), rois, levels, SCALES, output_size, sampling_ratio, aligned)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_no_rois_and_only_empty_rois():
    table = PyramidTable(_features())
    none = roi_align_levels(table, torch.zeros(0, 5), torch.zeros(0, dtype=torch.int64), SCALES, 7)
    assert none.shape == (0, 8, 7, 7)
    empty = torch.tensor([[0, 5.0, 5, 5, 30], [1, 8.0, 8, 40, 8]])
    got = roi_align_levels(table, empty, torch.tensor([0, 2]), SCALES, 7)
    assert got.shape == (2, 8, 7, 7) and not got.any()


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_each_roi_pools_the_same_bits_whatever_rois_share_the_call(sampling_ratio):
    """Bags are made per ROI (its own level and sample grid), so dropping ROIs (score_bound.py) or pooling
    them in other company changes no bit of the others."""
    table, rois = PyramidTable(_features()), _rois()
    levels = torch.randint(0, 3, (len(rois),), generator=torch.Generator().manual_seed(3))
    every = roi_align_levels(table, rois, levels, SCALES, 7, sampling_ratio)
    subset = torch.randperm(len(rois), generator=torch.Generator().manual_seed(4))[:17].sort().values
    assert torch.equal(roi_align_levels(table, rois[subset], levels[subset], SCALES, 7, sampling_ratio), every[subset])


def test_table_matches_only_the_same_unchanged_tensors():
    features = _features()
    table = PyramidTable(features)
    assert table.matches(features) and table.matches(list(features))
    assert not table.matches([f.clone() for f in features]) and not table.matches(features[:2])
    features[1].add_(1.0)  # changed in place: the table is stale
    assert not table.matches(features)
