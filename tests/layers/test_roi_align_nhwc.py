"""roi_align_nhwc against torchvision's roi_align (the C4 heads' CPU inference pooling)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from detic_cli.layers.roi_align_nhwc import roi_align_nhwc


def _rois() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(60, 2, generator=g) * 140 - 20
    wh = torch.rand(60, 2, generator=g) * 90 + 0.5
    rois = torch.cat([torch.randint(0, 2, (60, 1), generator=g).float(), xy, xy + wh], 1)
    edge_cases = torch.tensor([[0, 10.0, 10, 10, 10],  # empty box
                               [1, -50.0, -50, -20, -20],  # wholly outside
                               [0, 100.0, 60, 200, 200],  # past the bottom-right edge
                               [1, 0.0, 0, 128, 96]])  # the whole image
    return torch.cat([rois, edge_cases])


@pytest.mark.parametrize(("aligned", "sampling_ratio"), [(True, 0), (False, 0), (True, 2)])
@pytest.mark.parametrize("bin_step", [1, 2])
def test_equals_torchvision_roi_align(aligned, sampling_ratio, bin_step):
    features = torch.randn(2, 8, 12, 16, generator=torch.Generator().manual_seed(1))
    rois = _rois()
    expected = roi_align(features, rois, (14, 14), 1 / 8, sampling_ratio, aligned)[:, :, ::bin_step, ::bin_step]
    got = roi_align_nhwc(features, rois, 14, 1 / 8, sampling_ratio, aligned, bin_step=bin_step)
    assert got.shape == (len(rois), 14 // bin_step, 14 // bin_step, 8)
    torch.testing.assert_close(got.permute(0, 3, 1, 2), expected, rtol=1e-5, atol=1e-6)


def test_no_boxes():
    assert roi_align_nhwc(torch.randn(1, 4, 8, 8), torch.zeros(0, 5), 14, 1 / 16, bin_step=2).shape == (0, 7, 7, 4)
