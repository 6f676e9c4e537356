"""Boxes: (N, 4) XYXY tensors, their geometry and pairwise IoU."""

from __future__ import annotations

import pytest
import torch

from detic_cli.structures import Boxes
from detic_cli.structures.boxes import pairwise_iou


def test_empty_boxes_take_the_n_by_4_shape_and_bad_shapes_fail():
    assert Boxes(torch.zeros(0)).tensor.shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        Boxes(torch.zeros(3, 5))


def test_area_centers_nonempty_and_indexing():
    boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 2.0], [1.0, 1.0, 1.0, 5.0]]))
    assert boxes.area().tolist() == [8.0, 0.0]
    assert boxes.get_centers().tolist() == [[2.0, 1.0], [1.0, 3.0]]
    assert boxes.nonempty().tolist() == [True, False]
    assert boxes[1].tensor.shape == (1, 4) and len(boxes[torch.tensor([True, True])]) == 2


def test_clip_scale_and_cat():
    boxes = Boxes(torch.tensor([[-5.0, -1.0, 50.0, 30.0]]))
    boxes.clip((20, 40))
    assert boxes.tensor.tolist() == [[0.0, 0.0, 40.0, 20.0]]
    boxes.scale(0.5, 2.0)
    assert boxes.tensor.tolist() == [[0.0, 0.0, 20.0, 40.0]]
    assert len(Boxes.cat([boxes, boxes.clone()])) == 2 and len(Boxes.cat([])) == 0


def test_pairwise_iou_is_zero_without_overlap_and_one_for_equal_boxes():
    a = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0]]))
    b = Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0]]))
    torch.testing.assert_close(pairwise_iou(a, b), torch.tensor([[1.0, 1.0 / 3.0, 0.0]]))
