"""Open-vocabulary COCO: generalized AP50 over all, seen (48) and unseen/novel (17) classes.

As Detic's CustomCOCOEvaluator: the COCO box evaluation on the 65-class split
(`instances_val2017_all_2_oriorder.json`), "AP50" over every class with ground truth, and the
plain mean of per-class AP50 over the seen and the unseen names (NaN if one has no ground truth).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detic_cli.evaluation.coco_eval import coco_accumulate, per_category_ap50, summarize_coco
from detic_cli.evaluation.groundtruth import IouType, build_ground_truth

SEEN_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "train", "truck", "boat", "bench", "bird", "horse",
    "sheep", "bear", "zebra", "giraffe", "backpack", "handbag", "suitcase", "frisbee", "skis", "kite",
    "surfboard", "bottle", "fork", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "pizza", "donut", "chair", "bed", "toilet", "tv", "laptop", "mouse",
    "remote", "microwave", "oven", "toaster", "refrigerator", "book", "clock", "vase", "toothbrush",
)  # fmt: skip
UNSEEN_CLASSES = (
    "airplane", "bus", "cat", "dog", "cow", "elephant", "umbrella", "tie", "snowboard", "skateboard",
    "cup", "knife", "cake", "couch", "keyboard", "sink", "scissors",
)  # fmt: skip


def evaluate_ovcoco(
    data: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    iou_type: IouType = "bbox",
    drop_unknown_images: bool = False,
) -> dict[str, float]:
    """COCO numbers plus "AP50-seen" and "AP50-unseen" (percent); "AP50" is generalized all."""
    gt = build_ground_truth(data, rules="coco", iou_type=iou_type)
    acc = coco_accumulate(gt, results, iou_type=iou_type, drop_unknown_images=drop_unknown_images)
    out = summarize_coco(acc)
    ap50 = per_category_ap50(acc)
    names = {c["id"]: c["name"] for c in data["categories"]}
    cat_names = [names[i] for i in gt.category_ids.tolist()]
    for key, group in (("AP50-seen", SEEN_CLASSES), ("AP50-unseen", UNSEEN_CLASSES)):
        values = [ap50[k] for k, name in enumerate(cat_names) if name in group]
        out[key] = float(np.mean(values)) if values else float("nan")
    return out
