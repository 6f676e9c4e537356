"""Instance masks from their json form (polygons or RLE) to the `gt_masks` field of the augmented frame.

Polygons ([[x0, y0, x1, y1, ...], ...] in original pixels) are moved point by point. With
INPUT.MASK_FORMAT "polygon" (the original configs' value) they stay polygons (`PolygonMasks`: the mask
head rasterizes them inside each proposal box); with "bitmask" they are rasterized at the output size.
RLE masks (compressed or uncompressed, original size) are decoded and then warped like the image with
nearest-neighbour sampling: an image with an RLE instance gets bitmasks whatever the format.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch

from detic_cli.data.geometry import Transform
from detic_cli.structures.masks import PolygonMasks

MASK_FORMATS = ("polygon", "bitmask")


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """(height, width) bool: the union of the polygons (pixel-edge coordinates)."""
    valid = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in polygons if len(p) >= 6 and len(p) % 2 == 0]
    if not valid:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(valid, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """(h, w) bool from a COCO RLE dict (counts as a list: uncompressed, as a str/bytes: compressed)."""
    h, w = rle["size"]
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle["counts"], str):
        rle = {"size": [h, w], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def transformed_mask(segmentation: Any, transform: Transform, height: int, width: int,
                     out_height: int, out_width: int) -> np.ndarray:
    """(out_height, out_width) bool mask of one instance after `transform` (from a height x width image)."""
    if isinstance(segmentation, dict):
        mask = rle_to_mask(segmentation)
        if mask.shape != (height, width):
            raise ValueError(f"RLE mask of size {mask.shape} on an image of {(height, width)}")
        out = transform.apply_mask(mask.astype(np.uint8)).astype(bool)
        return _fit(out, out_height, out_width)
    return polygons_to_mask(transformed_polygons(segmentation, transform), out_height, out_width)


def transformed_polygons(polygons: list[list[float]], transform: Transform) -> list[np.ndarray]:
    """The valid polygons (>= 3 points) of one instance, each a float64 (2K,) array moved by `transform`."""
    return [transform.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)).ravel()
            for p in polygons if len(p) >= 6 and len(p) % 2 == 0]


def instance_masks(segmentations: list[Any], transform: Transform, height: int, width: int, out_height: int,
                   out_width: int, mask_format: str = "polygon") -> PolygonMasks | torch.Tensor:
    """The `gt_masks` of one image's instances after `transform` (from a height x width image to out_height x
    out_width): PolygonMasks when `mask_format` is "polygon" and every instance is given as polygons, else a
    bool (N, out_height, out_width) tensor."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"INPUT.MASK_FORMAT {mask_format!r}: expected polygon or bitmask")
    if mask_format == "polygon" and not any(isinstance(s, dict) for s in segmentations):
        return PolygonMasks([transformed_polygons(s, transform) for s in segmentations])
    masks = [transformed_mask(s, transform, height, width, out_height, out_width) for s in segmentations]
    stack = np.stack(masks) if masks else np.zeros((0, out_height, out_width), dtype=bool)
    return torch.from_numpy(stack)


def _fit(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    out = np.zeros((height, width), dtype=bool)
    h, w = min(height, mask.shape[0]), min(width, mask.shape[1])
    out[:h, :w] = mask[:h, :w]
    return out
