"""Deterministic test-time resizing, as detectron2's ResizeShortestEdge does it."""

from __future__ import annotations

import numpy as np
from PIL import Image


def shortest_edge_size(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """(new_h, new_w): shortest side to `short_edge`, longest capped at `max_size`, rounded half up."""
    scale = short_edge / min(height, width)
    if height < width:
        new_h, new_w = float(short_edge), scale * width
    else:
        new_h, new_w = scale * height, float(short_edge)
    if max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (new_h, new_w, 3) uint8 with PIL bilinear interpolation."""
    new_h, new_w = size
    if image.shape[:2] == (new_h, new_w):
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def resize_shortest_edge(image: np.ndarray, short_edge: int, max_size: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image for the network; `short_edge` 0 leaves it as it is."""
    if short_edge <= 0:
        return image
    return resize_image(image, shortest_edge_size(image.shape[0], image.shape[1], short_edge, max_size))
