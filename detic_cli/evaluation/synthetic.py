"""Synthetic LVIS/COCO-format ground truth and detections, for differential tests and benchmarks.

The sets are built to exercise the corner cases of the reference tools: annotation id 0, zero-area
annotations and boxes, crowd regions (COCO), federated negative and not-exhaustive lists (LVIS),
images over the 300-detection cap, images without detections, and tied scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pycocotools.mask as mask_utils


def synthetic_ground_truth(
    *,
    num_images: int,
    num_categories: int,
    seed: int = 0,
    lvis: bool = True,
    masks: bool = False,
    max_anns_per_image: int = 8,
) -> dict[str, Any]:
    """A COCO-format dict; with `lvis`, LVIS fields (frequency, neg/not-exhaustive lists)."""
    rng = np.random.default_rng(seed)
    cats = [{"id": 3 * k + 1, "name": f"class_{k}"} for k in range(num_categories)]
    if lvis:
        for c in cats:
            c["frequency"] = str(rng.choice(["r", "c", "f"]))
    cat_ids = np.asarray([c["id"] for c in cats])
    images, anns = [], []
    for i in range(num_images):
        img = {"id": int(7 * i + 5), "height": int(rng.integers(120, 400)), "width": int(rng.integers(120, 400))}
        present = rng.choice(cat_ids, size=min(3, num_categories), replace=False)
        for _ in range(int(rng.integers(0, max_anns_per_image + 1))):
            ann = _annotation(rng, img, int(rng.choice(present)), len(anns), masks, crowd=not lvis)
            anns.append(ann)
        if lvis:
            absent = np.setdiff1d(cat_ids, present)
            img["neg_category_ids"] = rng.choice(absent, size=min(4, len(absent)), replace=False).tolist()
            img["not_exhaustive_category_ids"] = rng.choice(present, size=1).tolist() if rng.random() < 0.3 else []
        images.append(img)
    rng.shuffle(images)
    return {"images": images, "annotations": anns, "categories": cats}


def _annotation(
    rng: np.random.Generator, img: dict[str, Any], cat_id: int, ann_id: int, masks: bool, crowd: bool
) -> dict[str, Any]:
    h, w = img["height"], img["width"]
    x, y = float(rng.uniform(0, w * 0.8)), float(rng.uniform(0, h * 0.8))
    bw, bh = float(rng.uniform(2, w - x)), float(rng.uniform(2, h - y))
    if rng.random() < 0.03:
        bw = 0.0  # a degenerate annotation: lvis-api skips it, pycocotools keeps it
    ann = {"id": ann_id, "image_id": img["id"], "category_id": cat_id, "bbox": [x, y, bw, bh], "area": bw * bh}
    is_crowd = crowd and rng.random() < 0.1
    ann["iscrowd"] = int(is_crowd)
    if masks:
        poly = _polygon(rng, x, y, bw, bh)
        rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
        ann["area"] = float(mask_utils.area(rle))
        ann["segmentation"] = _uncompressed(rle) if is_crowd else [poly]
    return ann


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    cx, cy = x + w / 2, y + h / 2
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(4, 9))))
    radius = rng.uniform(0.6, 1.0, size=len(angles))
    xs = cx + np.cos(angles) * radius * w / 2
    ys = cy + np.sin(angles) * radius * h / 2
    return np.stack([xs, ys], axis=1).ravel().tolist()


def _uncompressed(rle: dict[str, Any]) -> dict[str, Any]:
    """Compressed RLE -> uncompressed (counts as a list), the form crowd annotations use."""
    flat = mask_utils.decode(rle).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.r_[0, change, flat.size])
    if flat.size and flat[0] == 1:
        runs = np.r_[0, runs]  # counts start with the number of leading zeros
    return {"size": list(rle["size"]), "counts": [int(c) for c in runs]}


def synthetic_results(
    data: dict[str, Any], *, seed: int = 0, masks: bool = False, crowded_images: int = 2, max_random: int = 40
) -> list[dict[str, Any]]:
    """Detections near the ground truth plus random ones, with tied scores and empty images."""
    rng = np.random.default_rng(seed + 1000)
    cat_ids = [c["id"] for c in data["categories"]]
    by_image: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    results: list[dict[str, Any]] = []
    for n, img in enumerate(data["images"]):
        if n % 10 == 9:
            continue  # an image without detections
        num_random = 350 if n < crowded_images else int(rng.integers(0, max_random))
        shapes = [_near(rng, a) for a in by_image[img["id"]] for _ in range(2)]
        shapes += [_random_shape(rng, img, cat_ids) for _ in range(num_random)]
        for bbox, cat, poly in shapes:
            res = {"image_id": img["id"], "category_id": cat, "bbox": bbox}
            res["score"] = float(np.round(rng.uniform(0.05, 1.0), 2))  # rounding makes ties
            if masks:
                res["segmentation"] = _rle(poly, img)
            results.append(res)
    rng.shuffle(results)
    return results


Shape = tuple[list[float], int, list[float]]


def _near(rng: np.random.Generator, ann: dict[str, Any]) -> Shape:
    """A detection close to an annotation (same category, shifted box and outline)."""
    x, y, w, h = ann["bbox"]
    s = max(w, h, 1.0) * 0.08
    dx, dy, dw = (float(v) for v in rng.normal(0, s, size=3))
    poly = _polygon(rng, x, y, w, h)
    segm = ann.get("segmentation")
    if isinstance(segm, list) and segm:
        poly = segm[0]
    shifted = (np.asarray(poly).reshape(-1, 2) + [dx, dy]).ravel().tolist()
    return [x + dx, y + dy, max(w + dw, 0.0), h], int(ann["category_id"]), shifted


def _random_shape(rng: np.random.Generator, img: dict[str, Any], cat_ids: list[int]) -> Shape:
    w, h = img["width"], img["height"]
    x, y = float(rng.uniform(0, w - 2)), float(rng.uniform(0, h - 2))
    bw, bh = float(rng.uniform(0, w - x)), float(rng.uniform(1, h - y))
    return [x, y, bw, bh], int(rng.choice(cat_ids)), _polygon(rng, x, y, max(bw, 1.0), bh)


def _rle(poly: list[float], img: dict[str, Any]) -> dict[str, Any]:
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], img["height"], img["width"]))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
