"""Training augmentations: sizes drawn as detectron2/Detic draw them; boxes and masks follow the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from detic_cli.data.augment import (
    EfficientDetResizeCrop,
    RandomCrop,
    RandomFlip,
    ResizeShortestEdge,
    detr_augmentations,
    output_size,
    plan_transforms,
)
from detic_cli.data.geometry import FlipTransform, ResizeTransform, ScaleCropTransform, Transform
from detic_cli.data.masks import transformed_mask

H, W = 60, 90
BOX = np.array([[20.0, 10.0, 50.0, 40.0]])  # XYXY, pixel edges


def _box_image() -> np.ndarray:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[10:40, 20:50] = 255
    return image


def _pixels_box(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


RECIPES = {
    "resize": [ResizeShortestEdge([30, 45, 120], 150)],
    "resize_range_flip": [ResizeShortestEdge([40, 80], 1000, "range"), RandomFlip(1.0)],
    "vflip": [RandomFlip(1.0, horizontal=False)],
    "crop_resize_flip": [RandomCrop("absolute", (50, 70)), ResizeShortestEdge([100], 1000), RandomFlip(1.0)],
    "effdet": [EfficientDetResizeCrop(64, (0.8, 1.6)), RandomFlip(0.5)],
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_boxes_and_masks_follow_the_image(name):
    """The white rectangle's pixels, its transformed box and its transformed polygon mask agree."""
    polygon = [[20, 10, 50, 10, 50, 40, 20, 40]]
    for seed in range(6):
        rng = np.random.default_rng(seed)
        t = plan_transforms(RECIPES[name], H, W, rng)
        image = t.apply_image(_box_image())
        assert image.shape[:2] == output_size(t, H, W)
        box = t.apply_boxes(BOX)[0]
        oh, ow = image.shape[:2]
        box = np.array([min(max(box[0], 0), ow), min(max(box[1], 0), oh), min(box[2], ow), min(box[3], oh)])
        if (image[:, :, 0] > 127).sum() < 4:
            continue  # cropped away
        np.testing.assert_allclose(_pixels_box(image), box, atol=1.01)
        mask = transformed_mask(polygon, t, H, W, oh, ow)
        assert np.mean(mask == (image[:, :, 0] > 127)) > 0.97
        rle_mask = np.zeros((H, W), dtype=np.uint8)
        rle_mask[10:40, 20:50] = 1
        warped = t.apply_mask(rle_mask).astype(bool)
        assert warped.shape == (oh, ow) and np.mean(warped == (image[:, :, 0] > 127)) > 0.97


def test_flip_maps_x_to_width_minus_x():
    boxes = FlipTransform(W).apply_boxes(BOX)
    np.testing.assert_allclose(boxes, [[W - 50, 10, W - 20, 40]])
    image = FlipTransform(W).apply_image(_box_image())
    np.testing.assert_allclose(_pixels_box(image), boxes[0])


def test_resize_shortest_edge_sizes():
    rng = np.random.default_rng(0)
    sizes = {plan_transforms([ResizeShortestEdge([30, 45], 1000)], H, W, rng).transforms[0].new_h for _ in range(50)}
    assert sizes == {30, 45}
    t = plan_transforms([ResizeShortestEdge([600], 800)], H, W, rng).transforms[0]
    assert (t.new_h, t.new_w) == (533, 800)  # the longer side capped at max_size, rounded half up
    ranged = [plan_transforms([ResizeShortestEdge([40, 43], 1000, "range")], H, W, rng).transforms[0].new_h
              for _ in range(200)]
    assert set(ranged) == {40, 41, 42, 43}
    assert type(plan_transforms([ResizeShortestEdge([0])], H, W, rng).transforms[0]) is Transform  # 0: no resize
    for style in ("choice", "range"):  # one int: (size, size) in detectron2, for both sampling styles
        assert ResizeShortestEdge(40, 1000, style).get_transform(H, W, rng).new_h == 40


def test_efficientdet_resize_crop_geometry():
    rng = np.random.default_rng(3)
    for _ in range(20):
        t = EfficientDetResizeCrop(64, (0.1, 2.0)).get_transform(H, W, rng)
        assert isinstance(t, ScaleCropTransform)
        assert t.img_scale == pytest.approx(min(t.img_scale * H, t.img_scale * W) / min(H, W))
        assert (t.scaled_h, t.scaled_w) == (int(H * t.img_scale), int(W * t.img_scale))
        oh, ow = output_size(t, H, W)
        assert oh <= 64 and ow <= 64 and oh == min(t.scaled_h, 64) and ow == min(t.scaled_w, 64)
        assert 0 <= t.offset_x <= max(0, t.scaled_w - 64) and 0 <= t.offset_y <= max(0, t.scaled_h - 64)
    t = ScaleCropTransform(120, 180, 5, 7, 2.0, (64, 64))
    np.testing.assert_allclose(t.apply_boxes(BOX), [[2 * 20 - 7, 2 * 10 - 5, 2 * 50 - 7, 2 * 40 - 5]])


def test_random_crop_sizes():
    rng = np.random.default_rng(1)
    for _ in range(20):
        ch, cw = RandomCrop("absolute_range", (30, 50)).crop_hw(H, W, rng)
        assert 30 <= ch <= 50 and 30 <= cw <= 50
        ch, cw = RandomCrop("relative_range", (0.5, 0.8)).crop_hw(H, W, rng)
        assert 30 <= ch <= H and 72 <= cw <= W
    assert RandomCrop("relative", (0.5, 0.5)).crop_hw(H, W, rng) == (30, 45)
    assert RandomCrop("absolute", (100, 40)).crop_hw(H, W, rng) == (60, 40)


def test_detr_recipe_uses_both_branches():
    augs = detr_augmentations([80], 1000, "choice", RandomCrop("absolute_range", (20, 30)))
    kinds = set()
    for seed in range(20):
        t = plan_transforms(augs, H, W, np.random.default_rng(seed)).transforms[0]
        kinds.add(sum(isinstance(x, ResizeTransform) for x in t.transforms))
        assert min(output_size(t, H, W)) == 80
    assert kinds == {1, 2}
