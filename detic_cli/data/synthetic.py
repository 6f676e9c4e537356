"""Small synthetic training sets for tests and demos: coloured shapes on plain backgrounds.

`make_detection_dataset` writes PNG images under `root/images/` and an LVIS- or COCO-style json
(boxes XYWH in pixels, polygon masks, category names); `make_image_label_dataset` writes an
LVIS-style image-labelled json (`pos_category_ids`, `captions`, no boxes). Both use the same
categories (`SHAPE_CATEGORIES`, ids with gaps so the contiguous mapping matters) and are
deterministic given the seed. Shapes sit in separate grid cells, so masks never overlap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from detic_cli.utils import atomic_write_bytes

SHAPE_CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "circle"}, {"id": 3, "name": "square"}, {"id": 4, "name": "triangle"},
    {"id": 7, "name": "diamond"}, {"id": 8, "name": "star"},
]  # fmt: skip
IMAGE_DIR = "images"
_COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 200, 30),
           "purple": (150, 50, 180)}  # fmt: skip


def synthetic_categories() -> list[dict[str, Any]]:
    """[{"id", "name"}] of the shapes, sorted by id (contiguous index = position)."""
    return [dict(c) for c in SHAPE_CATEGORIES]


def _outline(name: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """(K, 2) float polygon of a shape of radius r around (cx, cy)."""
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        radii = np.full_like(t, r)
    else:
        sides = {"square": 4, "triangle": 3, "diamond": 4, "star": 10}[name]
        t = angle + np.arange(sides) * 2 * np.pi / sides + (np.pi / 4 if name == "square" else 0)
        radii = np.where(np.arange(sides) % 2, r * 0.45, r) if name == "star" else np.full(sides, r)
        if name == "diamond":
            radii = np.where(np.arange(sides) % 2, r * 0.6, r)
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1)


def _draw_image(rng: np.random.Generator, height: int, width: int, max_shapes: int):
    """An RGB image and its shapes: list of (category index, colour name, polygon (K, 2))."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = rng.integers(200, 256, size=3)
    rows, cols = (2, 3) if width > height else (3, 2) if height > width else (2, 2)
    cells = rng.permutation(rows * cols)[: int(rng.integers(1, max_shapes + 1))]
    shapes = []
    for cell in cells:
        ch, cw = height / rows, width / cols
        r = float(rng.uniform(0.25, 0.45)) * min(ch, cw)
        cy = (cell // cols + 0.5) * ch + rng.uniform(-0.05, 0.05) * ch
        cx = (cell % cols + 0.5) * cw + rng.uniform(-0.05, 0.05) * cw
        cat = int(rng.integers(len(SHAPE_CATEGORIES)))
        colour = list(_COLORS)[int(rng.integers(len(_COLORS)))]
        poly = _outline(SHAPE_CATEGORIES[cat]["name"], cx, cy, r, float(rng.uniform(0, np.pi)))
        cv2.fillPoly(image, [np.round(poly).astype(np.int32)], _COLORS[colour])
        shapes.append((cat, colour, poly))
    return image, shapes


def _image_size(index: int, size: int) -> tuple[int, int]:
    """(height, width): landscape for even images, portrait for odd ones; longer side `size`."""
    short = max(8, size * 3 // 4)
    return (short, size) if index % 2 == 0 else (size, short)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")


def _annotation(ann_id: int, image_id: int, cat: int, poly: np.ndarray, height: int, width: int,
                as_rle: bool) -> dict[str, Any]:
    flat = np.round(poly, 2).ravel().tolist()
    rle = mask_utils.merge(mask_utils.frPyObjects([flat], height, width))
    x0, y0 = poly.min(axis=0).clip(0)
    x1, y1 = np.minimum(poly.max(axis=0), [width, height])
    segm: Any = [flat]
    if as_rle:
        segm = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    return {"id": ann_id, "image_id": image_id, "category_id": SHAPE_CATEGORIES[cat]["id"],
            "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
            "area": float(mask_utils.area(rle)), "segmentation": segm}


def _crowd(ann_id: int, image_id: int, height: int, width: int) -> dict[str, Any]:
    """A crowd region (uncompressed RLE) over the top-left corner."""
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[: height // 4, : width // 4] = 1
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = [0] + np.diff(np.r_[0, change, flat.size]).tolist()  # counts start with a (here empty) run of zeros
    return {"id": ann_id, "image_id": image_id, "category_id": SHAPE_CATEGORIES[0]["id"], "iscrowd": 1,
            "bbox": [0.0, 0.0, float(width // 4), float(height // 4)], "area": float(mask.sum()),
            "segmentation": {"size": [height, width], "counts": runs}}


def make_detection_dataset(root: Path, *, num_images: int, size: int, seed: int, style: str = "lvis",
                           max_shapes: int = 3, rle_every: int = 0, crowd_every: int = 0) -> Path:
    """Write `root/images/<style>_NNNNNN.png` and `root/detection_<style>.json`; returns the json path.

    `style` "lvis": LVIS v1 fields (neg/not-exhaustive ids, category frequency and counts); "coco":
    COCO fields (`iscrowd`), every `rle_every`-th annotation's mask as compressed RLE and a crowd
    region in every `crowd_every`-th image (0: never).
    """
    if style not in ("lvis", "coco"):
        raise ValueError(f"style must be 'lvis' or 'coco', got {style!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(num_images):
        height, width = _image_size(i, size)
        pixels, shapes = _draw_image(rng, height, width, max_shapes)
        name = f"{style}_{i:06d}.png"
        _write_png(root / IMAGE_DIR / name, pixels)
        image: dict[str, Any] = {"id": i + 1, "file_name": name, "height": height, "width": width}
        for cat, _, poly in shapes:
            as_rle = style == "coco" and rle_every > 0 and (len(anns) + 1) % rle_every == 0
            anns.append(_annotation(len(anns) + 1, i + 1, cat, poly, height, width, as_rle))
            if style == "coco":
                anns[-1]["iscrowd"] = 0
        if style == "coco" and crowd_every > 0 and i % crowd_every == 0:
            anns.append(_crowd(len(anns) + 1, i + 1, height, width))
        if style == "lvis":
            present = {SHAPE_CATEGORIES[c]["id"] for c, _, _ in shapes}
            image["neg_category_ids"] = [c["id"] for c in SHAPE_CATEGORIES if c["id"] not in present][:2]
            image["not_exhaustive_category_ids"] = []
        images.append(image)
    categories = _categories(style, anns)
    return _write_json(root / f"detection_{style}.json", {"images": images, "annotations": anns,
                                                          "categories": categories})


def _categories(style: str, anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cats = synthetic_categories()
    for c in cats:
        if style == "lvis":
            mine = [a for a in anns if a["category_id"] == c["id"]]
            c["image_count"] = len({a["image_id"] for a in mine})
            c["instance_count"] = len(mine)
            c["frequency"] = "r" if c["image_count"] <= 2 else "c" if c["image_count"] <= 5 else "f"
            c.update({"synset": f"{c['name']}.n.01", "synonyms": [c["name"]], "def": f"a {c['name']} shape"})
        else:
            c["supercategory"] = "shape"
    return cats


def make_image_label_dataset(root: Path, *, num_images: int, size: int, seed: int, max_shapes: int = 3) -> Path:
    """Write `root/images/label_NNNNNN.png` and `root/image_labels.json`; returns the json path.

    Each image lists the category ids of its shapes in `pos_category_ids` (json ids, sorted) and one
    caption ("a red circle and a blue star"); there are no box annotations.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(num_images):
        height, width = _image_size(i, size)
        pixels, shapes = _draw_image(rng, height, width, max_shapes)
        name = f"label_{i:06d}.png"
        _write_png(root / IMAGE_DIR / name, pixels)
        words = [f"a {colour} {SHAPE_CATEGORIES[cat]['name']}" for cat, colour, _ in shapes]
        images.append({"id": i + 1, "file_name": name, "height": height, "width": width,
                       "pos_category_ids": sorted({SHAPE_CATEGORIES[c]["id"] for c, _, _ in shapes}),
                       "neg_category_ids": [], "captions": [" and ".join(words)]})
    return _write_json(root / "image_labels.json", {"images": images, "annotations": [],
                                                    "categories": synthetic_categories()})


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    atomic_write_bytes(path, json.dumps(data).encode("utf-8"))
    return path
