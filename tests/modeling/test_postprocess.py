"""Mask pasting: batched resampling equals one grid_sample per box; detector_postprocess rescales and pastes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.modeling.postprocess import detector_postprocess, paste_masks_in_image
from detic_cli.structures import Boxes, Instances


def _one_by_one(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The plain definition: per box, grid_sample at the pixel centres of the box grown by 1 px, clipped."""
    h, w = size
    out = torch.zeros((len(masks), h, w), dtype=torch.bool)
    for i, (bx0, by0, bx1, by1) in enumerate(boxes):
        x0, y0 = max(int(bx0.floor()) - 1, 0), max(int(by0.floor()) - 1, 0)
        x1, y1 = min(int(bx1.ceil()) + 1, w), min(int(by1.ceil()) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        ys = (torch.arange(y0, y1, dtype=torch.float32) + 0.5 - by0) / (by1 - by0) * 2 - 1
        xs = (torch.arange(x0, x1, dtype=torch.float32) + 0.5 - bx0) / (bx1 - bx0) * 2 - 1
        grid = torch.stack([xs[None, :].expand(len(ys), -1), ys[:, None].expand(-1, len(xs))], dim=2)
        out[i, y0:y1, x0:x1] = F.grid_sample(masks[i][None, None], grid[None], align_corners=False)[0, 0] >= 0.5
    return out


def test_batched_paste_equals_one_grid_sample_per_box():
    g = torch.Generator().manual_seed(0)
    n = 40
    masks = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * 300 - 40
    wh = torch.rand(n, 2, generator=g) ** 3 * 260 + 0.3  # mostly small boxes, a few large ones
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[0] = torch.tensor([50.0, 60.0, 50.0, 90.0])  # zero width
    boxes[1] = torch.tensor([-80.0, -70.0, -30.0, -20.0])  # wholly outside: nothing pasted
    boxes[2] = torch.tensor([0.0, 0.0, 320.0, 240.0])  # the whole image
    got = paste_masks_in_image(masks, boxes, (240, 320))
    assert got.shape == (n, 240, 320) and got.dtype == torch.bool and got.is_contiguous()
    assert torch.equal(got, _one_by_one(masks, boxes, (240, 320)))
    assert not got[1].any() and got.any()
    assert paste_masks_in_image(masks[:0], boxes[:0], (240, 320)).shape == (0, 240, 320)


def test_detector_postprocess_scales_clips_and_pastes():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [5.0, 5.0, 5.0, 30.0], [70.0, 70.0, 120.0, 90.0]])
    masks = torch.ones(3, 1, 28, 28)
    result = Instances((100, 100), pred_boxes=Boxes(boxes), scores=torch.tensor([0.9, 0.8, 0.7]),
                       pred_classes=torch.tensor([1, 2, 3]), pred_masks=masks)
    out = detector_postprocess(result, 200, 150)
    assert len(out) == 2  # the zero-width box is dropped
    torch.testing.assert_close(out.pred_boxes.tensor, torch.tensor([[15.0, 40.0, 75.0, 120.0],
                                                                    [105.0, 140.0, 150.0, 180.0]]))
    assert out.pred_masks.shape == (2, 200, 150)
    assert out.pred_masks[0, 41:119, 16:74].all() and not out.pred_masks[0, :30].any()
    assert torch.equal(out.pred_masks, _one_by_one(masks[[0, 2], 0], out.pred_boxes.tensor, (200, 150)))
