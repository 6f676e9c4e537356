"""Per-category counts of a COCO/LVIS-format dataset, as the original `tools/get_lvis_cat_info.py`.

`image_count` (distinct images with at least one annotation of the class) is what the federated
loss and the dynamic classifier sample by (`MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH`); `instance_count`
is the number of annotations. Crowd annotations count like any other, as in the original.
"""

from __future__ import annotations

import copy
from typing import Any

from detic_cli.errors import DeticError


def category_counts(data: dict[str, Any], *, source: str = "dataset") -> list[dict[str, Any]]:
    """A copy of `data["categories"]` (same order, every field kept) with `image_count` and
    `instance_count` set from `data["annotations"]`."""
    cats = copy.deepcopy(data["categories"])
    images: dict[int, set[Any]] = {c["id"]: set() for c in cats}
    instances = dict.fromkeys(images, 0)
    for ann in data.get("annotations", []):
        cat_id = ann["category_id"]
        if cat_id not in images:
            raise DeticError(f"{source}: annotation {ann.get('id')} has category {cat_id}, not in 'categories'")
        images[cat_id].add(ann["image_id"])
        instances[cat_id] += 1
    for cat in cats:
        cat["image_count"] = len(images[cat["id"]])
        cat["instance_count"] = instances[cat["id"]]
    return cats
