"""PolygonMasks and the polygon rasterizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detic_cli.structures.masks import PolygonMasks, polygons_in_box, rasterize_polygons


def test_polygon_masks_index_and_cat_like_instance_fields():
    masks = PolygonMasks([[[0, 0, 4, 0, 4, 4]], [[1, 1, 5, 1, 5, 5], [6, 6, 8, 6, 8, 8]], [[2, 2, 3, 2, 3, 3]]])
    assert len(masks[torch.tensor([True, False, True])]) == 2
    assert [len(p) for p in masks[torch.tensor([1, 0])].polygons] == [2, 1]
    assert len(masks[1:]) == 2 and len(masks[0]) == 1
    assert len(PolygonMasks.cat([masks, masks[:1]])) == 4
    with pytest.raises(ValueError, match="even number"):
        PolygonMasks([[[0, 0, 1, 1]]])


def test_rasterize_polygons_fills_the_union_and_an_empty_list_gives_nothing():
    square = rasterize_polygons([[1, 1, 5, 1, 5, 5, 1, 5]], 8, 8)
    assert square.dtype == np.bool_ and square[2:5, 2:5].all() and not square[6:, :].any()
    assert not rasterize_polygons([], 4, 4).any()


def test_polygons_in_box_scales_the_box_to_the_output_size():
    inside = polygons_in_box([[0, 0, 10, 0, 10, 10, 0, 10]], np.array([0, 0, 10, 10], dtype=np.float32), 4)
    assert inside.shape == (4, 4) and inside.all()
