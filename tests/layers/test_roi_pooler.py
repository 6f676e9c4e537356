"""Multi-level ROIAlign: the torchvision path splits the boxes over threads with bit-identical results; CPU
float32 inference gathers from a channels-last table (equal to torchvision up to float rounding)."""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from detic_cli.layers.roi_pooler import ROIPooler, _parallel_roi_align, assign_boxes_to_levels
from detic_cli.structures import Boxes


def _inputs() -> tuple[list[torch.Tensor], list[Boxes], torch.Tensor]:
    torch.manual_seed(0)
    features = [torch.randn(2, 4, 32, 32), torch.randn(2, 4, 16, 16)]
    xy = torch.rand(2, 40, 2) * 100
    boxes = [Boxes(torch.cat([xy[i], xy[i] + torch.rand(40, 2) * 300 + 4], dim=1)) for i in range(2)]
    rois = torch.cat([torch.cat([torch.full((40, 1), float(i)), b.tensor], dim=1) for i, b in enumerate(boxes)])
    return features, boxes, rois


def test_threaded_torchvision_pooling_is_bit_identical_to_one_call():
    features, _, rois = _inputs()
    with torch.no_grad():
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            split = _parallel_roi_align(features[0], rois, (7, 7), 1 / 8, 0, True)
            torch.set_num_threads(1)
            whole = _parallel_roi_align(features[0], rois, (7, 7), 1 / 8, 0, True)
        finally:
            torch.set_num_threads(threads)
    assert split.shape == (80, 4, 7, 7) and torch.equal(split, whole)
    assert torch.equal(whole, roi_align(features[0], rois, (7, 7), 1 / 8, 0, True))


def test_inference_gather_equals_the_torchvision_path():
    """CPU no-grad pooling (gather, one shared table) against the same pooler with gradient (torchvision)."""
    features, boxes, rois = _inputs()
    pooler = ROIPooler(output_size=7, scales=[1 / 8, 1 / 16])
    expected = pooler(features, boxes)
    levels = assign_boxes_to_levels(boxes, 3, 4)
    assert expected.requires_grad is False and 0 < int(levels.sum()) < len(levels)  # both levels in use
    with torch.no_grad():
        table = pooler.table(features)
        got = pooler(features, boxes, table=table)
        stale = pooler(features, boxes, table=pooler.table([f + 1 for f in features]))  # other tensors: rebuilt
        one_level = ROIPooler(output_size=7, scales=[1 / 8])([features[0]], boxes)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(stale, got)
    torch.testing.assert_close(one_level, roi_align(features[0], rois, (7, 7), 1 / 8, 0, True), rtol=1e-5, atol=1e-6)
