"""Deterministic geometric transforms of one image and its annotations (detectron2's Transform semantics).

Images are (H, W, C) uint8 numpy arrays; masks are (H, W) uint8/bool arrays; coordinates are (K, 2)
float arrays of (x, y) in pixels of the frame the transform starts from (pixel edges: x in [0, W]).
Each transform maps the input frame to its output frame: image, coordinates and masks consistently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from detic_cli.data.transforms import resize_image


def _resize_mask(mask: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    if mask.shape[:2] == (new_h, new_w):
        return mask
    out = Image.fromarray(mask.astype(np.uint8)).resize((new_w, new_h), Image.NEAREST)
    return np.asarray(out).astype(mask.dtype)


class Transform:
    """Base: identity."""

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return image

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        return mask

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) XYXY -> (N, 4) XYXY: the box around the four transformed corners."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        corners = boxes[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 2)
        moved = self.apply_coords(corners).reshape(-1, 4, 2)
        return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)


@dataclass
class ResizeTransform(Transform):
    """(h, w) -> (new_h, new_w): PIL bilinear for images, nearest for masks."""

    h: int
    w: int
    new_h: int
    new_w: int

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return resize_image(image, (self.new_h, self.new_w))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64)
        out[:, 0] *= self.new_w / self.w
        out[:, 1] *= self.new_h / self.h
        return out

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        return _resize_mask(mask, self.new_h, self.new_w)


@dataclass
class FlipTransform(Transform):
    """Mirror an image of `size` pixels along x (horizontal) or y (vertical): x -> size - x."""

    size: int
    horizontal: bool = True

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1] if self.horizontal else image[::-1])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64)
        axis = 0 if self.horizontal else 1
        out[:, axis] = self.size - out[:, axis]
        return out

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        return self.apply_image(mask)


@dataclass
class CropTransform(Transform):
    """Keep the window [x0, x0 + w) x [y0, y0 + h); coordinates shift by (-x0, -y0)."""

    x0: int
    y0: int
    w: int
    h: int

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64)
        out[:, 0] -= self.x0
        out[:, 1] -= self.y0
        return out

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        return self.apply_image(mask)


@dataclass
class ScaleCropTransform(Transform):
    """EfficientDet resize-crop: resize to (scaled_h, scaled_w), keep at most `target` pixels from the offset.

    Coordinates scale by `img_scale` (not by scaled_w / w) and shift by the offset, as in Detic.
    """

    scaled_h: int
    scaled_w: int
    offset_y: int
    offset_x: int
    img_scale: float
    target: tuple[int, int]  # (height, width)

    def _crop(self, array: np.ndarray) -> np.ndarray:
        bottom = min(self.scaled_h, self.offset_y + self.target[0])
        right = min(self.scaled_w, self.offset_x + self.target[1])
        return np.ascontiguousarray(array[self.offset_y:bottom, self.offset_x:right])

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return self._crop(resize_image(image, (self.scaled_h, self.scaled_w)))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        out = np.array(coords, dtype=np.float64) * self.img_scale
        out[:, 0] -= self.offset_x
        out[:, 1] -= self.offset_y
        return out

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        return self._crop(_resize_mask(mask, self.scaled_h, self.scaled_w))


class TransformList(Transform):
    """Transforms applied in order."""

    def __init__(self, transforms: list[Transform]) -> None:
        self.transforms = list(transforms)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            image = t.apply_image(image)
        return image

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            coords = t.apply_coords(coords)
        return coords

    def apply_mask(self, mask: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            mask = t.apply_mask(mask)
        return mask
