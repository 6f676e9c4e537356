"""Instance masks from their json form (polygons or RLE) to bool bitmaps in the augmented frame.

Polygons ([[x0, y0, x1, y1, ...], ...] in original pixels) are moved point by point and rasterized at
the output size; RLE masks (compressed or uncompressed, original size) are decoded and then warped
like the image with nearest-neighbour sampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.data.geometry import Transform


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
    moved = [transform.apply_coords(np.asarray(p, dtype=np.float64).reshape(-1, 2)).ravel()
             for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]
    return polygons_to_mask(moved, out_height, out_width)


def _fit(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    out = np.zeros((height, width), dtype=bool)
    h, w = min(height, mask.shape[0]), min(width, mask.shape[1])
    out[:h, :w] = mask[:h, :w]
    return out
