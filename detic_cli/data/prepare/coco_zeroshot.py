"""`coco-zeroshot`: the open-vocabulary COCO split (48 base / 17 novel classes) in the original
class order (OVR-CNN's split, then the original `tools/get_coco_zeroshot_oriorder.py` and
`tools/get_lvis_cat_info.py`).

The split keeps the annotations of its classes and the images that keep at least one annotation:
- `coco/zero-shot/instances_train2017_seen_2_oriorder.json` (dataset `coco_zeroshot_train_oriorder`):
  train2017, the 48 base classes;
- `coco/zero-shot/instances_val2017_all_2_oriorder.json` (`coco_generalized_zeroshot_val`):
  val2017, the 48 base + 17 novel classes;
- `..._seen_2_oriorder_cat_info.json`: the train file's class image counts (the OV-COCO config's
  `CAT_FREQ_PATH`).
Both json files carry all 80 COCO categories of `instances_val2017.json`, in its order, so class
indices are COCO's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detic_cli.data.prepare.base import Progress, Target, begin, output_paths, read_annotations
from detic_cli.data.prepare.cat_info import category_counts
from detic_cli.data.prepare.jsonio import write_json
from detic_cli.errors import DeticError

# COCO category ids of the split (Bansal et al. 2018, as OVR-CNN and Detic use it).
SEEN_IDS = (1, 2, 3, 4, 7, 8, 9, 15, 16, 19, 20, 23, 24, 25, 27, 31, 33, 34, 35, 38, 42, 44, 48, 50, 51, 52, 53,
            54, 55, 56, 57, 59, 60, 62, 65, 70, 72, 73, 74, 75, 78, 79, 80, 82, 84, 85, 86, 90)
UNSEEN_IDS = (5, 6, 17, 18, 21, 22, 28, 32, 36, 41, 47, 49, 61, 63, 76, 81, 87)

TRAIN = "coco/annotations/instances_train2017.json"
VAL = "coco/annotations/instances_val2017.json"
TRAIN_OUT = "coco/zero-shot/instances_train2017_seen_2_oriorder.json"
VAL_OUT = "coco/zero-shot/instances_val2017_all_2_oriorder.json"
CAT_INFO = "coco/zero-shot/instances_train2017_seen_2_oriorder_cat_info.json"

TARGET = Target(
    name="coco-zeroshot",
    summary="open-vocabulary COCO: 48 base classes for training, 48+17 for evaluation, COCO class order",
    inputs=((TRAIN,), (VAL,)),
    outputs=(TRAIN_OUT, VAL_OUT, CAT_INFO),
    source_hint="download the COCO 2017 annotations (cocodataset.org) to coco/annotations/ "
                "and the images to coco/train2017/, coco/val2017/",
)


def split(data: dict[str, Any], keep_ids: set[int], categories: list[dict[str, Any]]) -> dict[str, Any]:
    """`data` restricted to annotations of `keep_ids` and the images that still have one, with
    `categories` (all 80) as its category list."""
    anns = [a for a in data["annotations"] if a["category_id"] in keep_ids]
    used = {a["image_id"] for a in anns}
    return {**data, "images": [img for img in data["images"] if img["id"] in used], "annotations": anns,
            "categories": categories}


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    val = read_annotations(TARGET, root / VAL, progress)
    categories = val["categories"]
    missing = sorted(set(SEEN_IDS + UNSEEN_IDS) - {c["id"] for c in categories})
    if missing:
        raise DeticError(f"{root / VAL}: COCO category ids {missing} not found; expected the 80 COCO 2017 classes")
    write_json(outputs[1], split(val, set(SEEN_IDS + UNSEEN_IDS), categories))
    del val
    train = split(read_annotations(TARGET, root / TRAIN, progress), set(SEEN_IDS), categories)
    write_json(outputs[0], train)
    write_json(outputs[2], category_counts(train, source=str(outputs[0])))
    progress.note(f"coco-zeroshot: {len(train['images'])} training images with base-class boxes")
    return outputs
