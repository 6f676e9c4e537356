"""Instance masks kept as polygons (INPUT.MASK_FORMAT "polygon"), rasterized only inside boxes.

This is how the original trains its mask heads (detectron2's PolygonMasks): the ground-truth polygons
travel through augmentation as point lists, and the mask target of a proposal is the union of its
ground truth's polygons drawn inside the proposal box at the head's resolution, not a crop of a
full-image bitmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch

Polygon = np.ndarray  # (2K,) float64 [x0, y0, x1, y1, ...], K >= 3, image pixels (pixel-edge coordinates)


def rasterize_polygons(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """(height, width) bool: the union of `polygons` (COCO's rasterizer; empty list: all False)."""
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects([np.asarray(p, dtype=np.float64).tolist() for p in polygons], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def polygons_in_box(polygons: Sequence[Polygon], box: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: `polygons` seen through the XYXY `box` (float32 (4,)), drawn at size x size.

    The points are shifted by the box's (x0, y0) and scaled by size / box width and size / box height
    (sides under 0.1 px count as 0.1); box sizes and scales are float32 arithmetic, the points float64,
    as in the original."""
    width, height = box[2] - box[0], box[3] - box[1]
    ratio_w, ratio_h = size / max(width, 0.1), size / max(height, 0.1)
    moved = []
    for polygon in polygons:
        p = np.array(polygon, dtype=np.float64)
        p[0::2] = (p[0::2] - box[0]) * ratio_w
        p[1::2] = (p[1::2] - box[1]) * ratio_h
        moved.append(p)
    return rasterize_polygons(moved, size, size)


class PolygonMasks:
    """N instance masks, each a list of polygons (float64 (2K,) point arrays in image pixels).

    Behaves as an Instances field: len, indexing by int / slice / bool or int64 tensor / list, `to()`
    (polygons stay on the host), `cat`.
    """

    def __init__(self, polygons: Sequence[Sequence[Any]]) -> None:
        self.polygons: list[list[Polygon]] = []
        for instance in polygons:
            points = [np.asarray(p, dtype=np.float64).reshape(-1) for p in instance]
            bad = [len(p) for p in points if len(p) < 6 or len(p) % 2]
            if bad:
                raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {bad[0]}")
            self.polygons.append(points)

    def __len__(self) -> int:
        return len(self.polygons)

    def __getitem__(self, item: int | slice | torch.Tensor | Sequence[int]) -> PolygonMasks:
        if isinstance(item, int):
            return PolygonMasks([self.polygons[item]])
        if isinstance(item, slice):
            return PolygonMasks(self.polygons[item])
        index = torch.as_tensor(item)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        return PolygonMasks([self.polygons[int(i)] for i in index.tolist()])

    def to(self, *args: Any, **kwargs: Any) -> PolygonMasks:
        return self

    @staticmethod
    def cat(items: Sequence[PolygonMasks]) -> PolygonMasks:
        return PolygonMasks([p for item in items for p in item.polygons])

    def to_bitmasks(self, height: int, width: int) -> torch.Tensor:
        """(N, height, width) bool full-image masks."""
        masks = [torch.from_numpy(rasterize_polygons(p, height, width)) for p in self.polygons]
        return torch.stack(masks) if masks else torch.zeros((0, height, width), dtype=torch.bool)

    def crop_and_resize(self, boxes: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
        """(R, size, size) bool: instance `index[r]`'s polygons drawn inside XYXY box `boxes[r]` (R, 4)."""
        boxes = boxes.detach().to("cpu", torch.float32).numpy()
        chosen = index.to("cpu").tolist()
        if len(chosen) == 0:
            return torch.zeros((0, size, size), dtype=torch.bool)
        return torch.stack([torch.from_numpy(polygons_in_box(self.polygons[i], box, size))
                            for i, box in zip(chosen, boxes, strict=True)])
