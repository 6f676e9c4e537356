"""Training augmentations: random choices drawn from a numpy Generator, applied as geometry transforms.

Each augmentation looks at the current (H, W) and returns a deterministic `Transform`; the mapper
applies it to the image, the boxes (XYXY pixels) and the masks alike. Random choices follow
detectron2/Detic: ResizeShortestEdge ("choice"/"range" + max size), RandomFlip (p = 0.5),
RandomCrop (relative/absolute/..._range), EfficientDetResizeCrop (scale range, random offset),
and DETR's "half the time resize-crop-resize" recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detic_cli.data.geometry import (
    CropTransform,
    FlipTransform,
    ResizeTransform,
    ScaleCropTransform,
    Transform,
    TransformList,
)
from detic_cli.data.transforms import shortest_edge_size

UNLIMITED = 1 << 62


class Augmentation:
    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        raise NotImplementedError


class ResizeShortestEdge(Augmentation):
    """Shortest side to a size drawn from `short_edges` ("choice") or [lo, hi] ("range"); longest <= max_size."""

    def __init__(self, short_edges: int | Sequence[int], max_size: int = UNLIMITED, sample_style: str = "choice"):
        # a single size means [size, size], as detectron2 reads it (valid for "choice" and "range")
        self.short_edges = [int(short_edges)] * 2 if isinstance(short_edges, int) else [int(s) for s in short_edges]
        if sample_style not in ("choice", "range"):
            raise ValueError(f"sample_style must be 'choice' or 'range', got {sample_style!r}")
        if sample_style == "range" and len(self.short_edges) != 2:
            raise ValueError(f"'range' sampling needs [min, max], got {self.short_edges}")
        self.max_size, self.sample_style = int(max_size), sample_style

    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        if self.sample_style == "range":
            size = int(rng.integers(self.short_edges[0], self.short_edges[1] + 1))
        else:
            size = int(self.short_edges[int(rng.integers(len(self.short_edges)))])
        if size == 0:
            return Transform()
        new_h, new_w = shortest_edge_size(height, width, size, self.max_size)
        return ResizeTransform(height, width, new_h, new_w)


class RandomFlip(Augmentation):
    """Flip with probability `prob`, horizontally (default) or vertically."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True) -> None:
        self.prob, self.horizontal = prob, horizontal

    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        if rng.random() < self.prob:
            return FlipTransform(width if self.horizontal else height, self.horizontal)
        return Transform()


class RandomCrop(Augmentation):
    """A window of a size set by `crop_type` at a uniform random position inside the image."""

    def __init__(self, crop_type: str, crop_size: Sequence[float]) -> None:
        if crop_type not in ("relative_range", "relative", "absolute", "absolute_range"):
            raise ValueError(f"unknown crop type {crop_type!r}")
        self.crop_type, self.crop_size = crop_type, [float(v) for v in crop_size]

    def crop_hw(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int]:
        a, b = self.crop_size
        if self.crop_type == "relative":
            return int(h * a + 0.5), int(w * b + 0.5)
        if self.crop_type == "relative_range":
            rel = np.asarray(self.crop_size, dtype=np.float32) + rng.random(2) * (1 - np.asarray(self.crop_size))
            return int(h * rel[0] + 0.5), int(w * rel[1] + 0.5)
        if self.crop_type == "absolute":
            return min(int(a), h), min(int(b), w)
        ch = int(rng.integers(min(h, int(a)), min(h, int(b)) + 1))
        cw = int(rng.integers(min(w, int(a)), min(w, int(b)) + 1))
        return ch, cw

    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        ch, cw = self.crop_hw(height, width, rng)
        y0 = int(rng.integers(height - ch + 1))
        x0 = int(rng.integers(width - cw + 1))
        return CropTransform(x0, y0, cw, ch)


class EfficientDetResizeCrop(Augmentation):
    """Fit the image into (s * size) x (s * size), s ~ U(scale range); crop `size` x `size` at a random offset.

    The output is at most size x size (smaller images are not padded here).
    """

    def __init__(self, size: int, scale: Sequence[float]) -> None:
        self.size, self.scale = int(size), (float(scale[0]), float(scale[1]))

    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        factor = rng.uniform(*self.scale)
        img_scale = min(factor * self.size / height, factor * self.size / width)
        scaled_h, scaled_w = int(height * img_scale), int(width * img_scale)
        offset_y = int(max(0.0, float(scaled_h - self.size)) * rng.uniform(0, 1))
        offset_x = int(max(0.0, float(scaled_w - self.size)) * rng.uniform(0, 1))
        return ScaleCropTransform(scaled_h, scaled_w, offset_y, offset_x, img_scale, (self.size, self.size))


class RandomEither(Augmentation):
    """With probability `prob` the `first` list, else the `second` (DETR: plain vs crop recipe)."""

    def __init__(self, first: Sequence[Augmentation], second: Sequence[Augmentation], prob: float = 0.5) -> None:
        self.first, self.second, self.prob = list(first), list(second), prob

    def get_transform(self, height: int, width: int, rng: np.random.Generator) -> Transform:
        chosen = self.first if rng.random() < self.prob else self.second
        return plan_transforms(chosen, height, width, rng)


def plan_transforms(augs: Sequence[Augmentation], height: int, width: int,
                    rng: np.random.Generator) -> TransformList:
    """Draw every augmentation in order, each seeing the size the previous ones produce."""
    out: list[Transform] = []
    for aug in augs:
        t = aug.get_transform(height, width, rng)
        out.append(t)
        height, width = output_size(t, height, width)
    return TransformList(out)


def output_size(t: Transform, height: int, width: int) -> tuple[int, int]:
    """(H, W) after transform `t` of an image of (height, width)."""
    if isinstance(t, TransformList):
        for inner in t.transforms:
            height, width = output_size(inner, height, width)
        return height, width
    if isinstance(t, ResizeTransform):
        return t.new_h, t.new_w
    if isinstance(t, CropTransform):
        return t.h, t.w
    if isinstance(t, ScaleCropTransform):
        return (min(t.scaled_h, t.offset_y + t.target[0]) - t.offset_y,
                min(t.scaled_w, t.offset_x + t.target[1]) - t.offset_x)
    return height, width


def detr_augmentations(min_sizes: Sequence[int], max_size: int, sample_style: str,
                       crop: RandomCrop | None) -> list[Augmentation]:
    """Deformable-DETR training: flip + resize, or (half the time, when crop is set) flip + resize to
    400/500/600 + crop + resize."""
    flip, resize = RandomFlip(), ResizeShortestEdge(min_sizes, max_size, sample_style)
    if crop is None:
        return [flip, resize]
    return [RandomEither([flip, resize], [flip, ResizeShortestEdge([400, 500, 600]), crop, resize])]
