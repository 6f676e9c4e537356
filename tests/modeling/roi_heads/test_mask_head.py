"""Mask training targets (gt mask seen through each proposal box) and the mask loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detic_cli.modeling.roi_heads.mask_head import mask_rcnn_loss, mask_targets
from detic_cli.structures import Boxes, Instances


def _masks() -> torch.Tensor:
    masks = torch.zeros(2, 40, 60, dtype=torch.bool)
    masks[0, 10:30, 10:30] = True  # a square
    masks[1, 0:40, 30:60] = True   # the right half
    return masks


def test_targets_crop_the_matched_mask_inside_each_box():
    boxes = torch.tensor([[10.0, 10, 30, 30],   # exactly the square: all inside
                          [10.0, 10, 50, 30],   # square on the left half of the box
                          [0.0, 0, 60, 40],     # whole image, gt 1: right half
                          [40.0, 0, 60, 10]])   # inside gt 1's region
    out = mask_targets(_masks(), boxes, torch.tensor([0, 0, 1, 1]), 8)
    assert out.dtype == torch.bool and out.shape == (4, 8, 8)
    assert out[0].all()
    assert out[1][:, :4].all() and not out[1][:, 4:].any()
    assert not out[2][:, :4].any() and out[2][:, 4:].all()
    assert out[3].all()
    assert mask_targets(_masks(), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 8).shape == (0, 8, 8)


def test_targets_threshold_partial_cells_at_half():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    mask[0, :, :3] = True  # 3 of 10 columns
    out = mask_targets(mask, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0]), 5)
    # cells are 2 px wide: column 0 fully covered, column 1 covers x in [2, 4): 50% -> kept (>= 0.5)
    assert out[0, :, 0].all() and out[0, :, 1].all() and not out[0, :, 2:].any()


def test_mask_loss_is_mean_bce_on_the_gt_class_channel():
    masks = _masks()
    props = [Instances((40, 60), proposal_boxes=Boxes(torch.tensor([[10.0, 10, 30, 30], [0.0, 0, 60, 40]])),
                       gt_classes=torch.tensor([2, 0]), gt_index=torch.tensor([0, 1]))]
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = mask_rcnn_loss(logits, props, [masks])
    target = mask_targets(masks, props[0].proposal_boxes.tensor, props[0].gt_index, 4).float()
    picked = torch.stack([logits[0, 2], logits[1, 0]])
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(picked, target).item(), rel=1e-6)
    agnostic = mask_rcnn_loss(logits[:, :1], props, [masks])
    assert agnostic.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits[:, 0], target).item(), rel=1e-6)
    empty = mask_rcnn_loss(torch.zeros(0, 1, 4, 4, requires_grad=True), [props[0][:0]], [masks])
    assert empty.item() == 0 and empty.requires_grad


def test_polygon_targets_are_drawn_inside_each_box():
    """INPUT.MASK_FORMAT polygon (the original's): ground-truth polygons shifted by the box corner, scaled by
    M / box side and rasterized at M x M, not a crop of a full-image bitmap."""
    from detic_cli.structures.masks import PolygonMasks, rasterize_polygons

    square = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    right_half = [[30.0, 0.0, 60.0, 0.0, 60.0, 40.0, 30.0, 40.0]]
    polygons = PolygonMasks([square, right_half])
    boxes = torch.tensor([[10.0, 10, 30, 30], [10.0, 10, 50, 30], [0.0, 0, 60, 40], [20.0, 5, 45, 25]])
    out = mask_targets(polygons, boxes, torch.tensor([0, 0, 1, 1]), 8)
    assert out.dtype == torch.bool and out.shape == (4, 8, 8)
    assert out[0].all()
    assert out[1][:, :4].all() and not out[1][:, 4:].any()
    assert not out[2][:, :4].any() and out[2][:, 4:].all()
    # an oblique box: the same as drawing the moved polygon ((x - 20) * 8 / 25, (y - 5) * 8 / 20) at 8 x 8
    moved = [30.0, 0.0, 60.0, 0.0, 60.0, 40.0, 30.0, 40.0]
    moved = [(v - 20.0) * 8 / 25 if k % 2 == 0 else (v - 5.0) * 8 / 20 for k, v in enumerate(moved)]
    assert torch.equal(out[3], torch.from_numpy(rasterize_polygons([moved], 8, 8)))
    assert mask_targets(polygons, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 8).shape == (0, 8, 8)


def test_polygon_and_bitmask_targets_differ_at_the_edges_only():
    """Both formats agree away from the polygon's edges; they differ where ROIAlign's bilinear samples of the
    full-image bitmap straddle an edge (the bitmask path is not the original's recipe)."""
    from detic_cli.structures.masks import PolygonMasks

    triangle = [[3.3, 2.1, 37.8, 5.4, 12.6, 35.7]]
    polygons = PolygonMasks([triangle])
    boxes = torch.tensor([[1.7, 0.9, 39.2, 37.1]])
    from_polygons = mask_targets(polygons, boxes, torch.tensor([0]), 28)
    from_bitmask = mask_targets(polygons.to_bitmasks(40, 40), boxes, torch.tensor([0]), 28)
    differ = (from_polygons != from_bitmask).sum().item()
    assert 0 < differ < 0.1 * from_polygons.sum().item()
