"""Instances: per-image fields of one length, indexed, moved and concatenated together."""

from __future__ import annotations

import pytest
import torch

from detic_cli.structures import Boxes, Instances


def _instances() -> Instances:
    return Instances((10, 20), pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 4.0, 4.0]])),
                     scores=torch.tensor([0.9, 0.1]), names=["a", "b"])


def test_fields_share_one_length():
    inst = _instances()
    assert len(inst) == 2 and inst.image_size == (10, 20) and inst.has("scores")
    with pytest.raises(ValueError, match="length"):
        inst.pred_classes = torch.zeros(3)
    with pytest.raises(AttributeError):
        _ = inst.missing
    inst.remove("names")
    assert sorted(inst.get_fields()) == ["pred_boxes", "scores"]


def test_indexing_keeps_every_field_in_step():
    inst = _instances()
    last = inst[-1]
    assert len(last) == 1 and last.scores.tolist() == [pytest.approx(0.1)] and last.names == ["b"]
    inst.remove("names")  # a list field takes ints and slices only
    kept = inst[inst.scores > 0.5]
    assert kept.pred_boxes.tensor.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert len(Instances((1, 1))) == 0


def test_cat_and_to():
    both = Instances.cat([_instances(), _instances()[:1]])
    assert len(both) == 3 and both.names == ["a", "b", "a"] and len(both.pred_boxes) == 3
    moved = both.to("cpu")
    assert moved.image_size == (10, 20) and moved.scores.device.type == "cpu"
