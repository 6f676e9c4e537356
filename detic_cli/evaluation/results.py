"""Per-image predictions -> COCO result dicts, as detectron2's `instances_to_coco_json` writes them.

Boxes become xywh in the predictions' own precision, class indices into the vocabulary become
the dataset's category ids (vocabulary row i is the i-th smallest category id, the order of the
original metadata `.npy` files), and masks become compressed RLE with text counts. Each image's
results are sorted by decreasing score (stable), the order detectron2 emits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.errors import DeticError


def dataset_category_ids(data: dict[str, Any]) -> list[int]:
    """Category ids in vocabulary order (sorted), for `to_coco_results`."""
    return sorted(int(c["id"]) for c in data["categories"])


def to_coco_results(
    image_id: int,
    *,
    boxes_xyxy: Any,
    scores: Any,
    class_indices: Any,
    category_ids: Sequence[int],
    masks: Sequence[Any] | Any | None = None,
) -> list[dict[str, Any]]:
    """Results of one image. `masks`: RLE dicts or boolean HxW arrays, one per detection."""
    boxes = np.asarray(boxes_xyxy).reshape(-1, 4)
    scores_arr = np.asarray(scores).reshape(-1)
    classes = np.asarray(class_indices, dtype=np.int64).reshape(-1)
    if not len(boxes) == len(scores_arr) == len(classes):
        raise DeticError(f"image {image_id}: {len(boxes)} boxes, {len(scores_arr)} scores, {len(classes)} classes")
    if len(classes) and (classes.min() < 0 or classes.max() >= len(category_ids)):
        raise DeticError(f"image {image_id}: class index outside the {len(category_ids)}-class vocabulary")
    xywh = boxes.copy()
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    rles = _rles(masks, len(boxes)) if masks is not None else None
    out = []
    for i in np.argsort(-scores_arr, kind="stable").tolist():
        res = {
            "image_id": int(image_id),
            "category_id": int(category_ids[classes[i]]),
            "bbox": xywh[i].tolist(),
            "score": float(scores_arr[i]),
        }
        if rles is not None:
            res["segmentation"] = rles[i]
        out.append(res)
    return out


def _rles(masks: Sequence[Any] | Any, count: int) -> list[dict[str, Any]]:
    items = list(masks)
    if len(items) != count:
        raise DeticError(f"{len(items)} masks for {count} detections")
    return [_rle(m) for m in items]


def _rle(mask: Any) -> dict[str, Any]:
    if isinstance(mask, dict):
        counts = mask["counts"]
        return {"size": list(mask["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
    arr = np.asarray(mask, dtype=np.uint8)
    rle = mask_utils.encode(np.asfortranarray(arr[:, :, None]))[0]
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
