"""Multi-level ROIAlign: CPU inference splits the boxes over threads with bit-identical results."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from detic_cli.layers.roi_pooler import ROIPooler
from detic_cli.structures import Boxes


def test_threaded_pooling_is_bit_identical_to_one_call():
    torch.manual_seed(0)
    features = [torch.randn(2, 4, 32, 32), torch.randn(2, 4, 16, 16)]
    xy = torch.rand(2, 40, 2) * 100
    boxes = [Boxes(torch.cat([xy[i], xy[i] + torch.rand(40, 2) * 150 + 4], dim=1)) for i in range(2)]
    pooler = ROIPooler(output_size=7, scales=[1 / 8, 1 / 16])
    with torch.no_grad():
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            split = pooler(features, boxes)
            torch.set_num_threads(1)
            whole = pooler(features, boxes)
        finally:
            torch.set_num_threads(threads)
        rois = torch.cat([torch.cat([torch.full((40, 1), float(i)), b.tensor], dim=1) for i, b in enumerate(boxes)])
        one_level = ROIPooler(output_size=7, scales=[1 / 8])([features[0]], boxes)
    assert split.shape == (80, 4, 7, 7) and torch.equal(split, whole)
    assert torch.equal(one_level, roi_align(features[0], rois, (7, 7), 1 / 8, 0, True))
