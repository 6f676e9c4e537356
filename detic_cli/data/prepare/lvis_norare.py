"""`lvis-norare`: the open-vocabulary LVIS training set and the federated-loss frequency file
(original `tools/remove_lvis_rare.py` and `tools/get_lvis_cat_info.py`).

- `lvis/lvis_v1_train_norare.json` (dataset `lvis_v1_train_norare`): LVIS v1 train with every
  annotation of a rare (`frequency == "r"`) category removed; images and categories unchanged.
- `metadata/lvis_v1_train_cat_info.json` (`MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH`): the categories of
  the full train set with `image_count` and `instance_count`, as the original recipes use for both
  the standard and the open-vocabulary runs.
"""

from __future__ import annotations

from pathlib import Path

from detic_cli.data.prepare.base import Progress, Target, begin, output_paths, read_annotations
from detic_cli.data.prepare.cat_info import category_counts
from detic_cli.data.prepare.jsonio import write_json
from detic_cli.errors import DeticError

TRAIN = "lvis/lvis_v1_train.json"
NORARE = "lvis/lvis_v1_train_norare.json"
CAT_INFO = "metadata/lvis_v1_train_cat_info.json"
EXCLUDED_FREQUENCIES = ("r",)

TARGET = Target(
    name="lvis-norare",
    summary="LVIS v1 train without rare-class annotations, and the class image counts for the federated loss",
    inputs=((TRAIN,),),
    outputs=(NORARE, CAT_INFO),
    source_hint="download lvis_v1_train.json (lvisdataset.org) to lvis/ and the COCO 2017 images to coco/train2017/",
)


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    data = read_annotations(TARGET, root / TRAIN, progress)
    missing = [c["id"] for c in data["categories"] if "frequency" not in c]
    if missing:
        raise DeticError(f"{root / TRAIN}: categories {missing[:5]} have no 'frequency'; is this an LVIS v1 file?")
    write_json(outputs[1], category_counts(data, source=str(root / TRAIN)))
    frequency = {c["id"]: c["frequency"] for c in data["categories"]}
    before = len(data["annotations"])
    data["annotations"] = [a for a in data["annotations"]
                           if frequency.get(a["category_id"]) not in EXCLUDED_FREQUENCIES]
    write_json(outputs[0], data)
    progress.note(f"lvis-norare: kept {len(data['annotations'])} of {before} annotations")
    return outputs
