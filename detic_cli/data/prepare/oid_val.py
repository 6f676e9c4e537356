"""`oid-val`: the OpenImages challenge-2019 validation json with hierarchy-expanded labels
(UniDet's `convert_oid.py --subsets val --expand_label` after TensorFlow's
`oid_hierarchical_labels_expansion.py`), dataset `oid_val_expanded`.

- categories: the 500 challenge classes in `challenge-2019-classes-description-500.csv` order,
  `{"id": 1.., "name", "freebase_id"}`;
- images: `id` 1.. (sorted OpenImages ImageIDs), `file_name` `<first character>/<ImageID>.jpg` (or
  `<ImageID>.jpg` when the images sit flat in `oid/images/validation/`), `height`, `width`,
  `pos_category_ids` (verified-present labels and all their ancestors), `neg_category_ids`
  (verified-absent labels and all their descendants);
- annotations: every box once for its class and once for each ancestor class (the hierarchy root
  excluded), `bbox` XYWH in pixels rounded to 0.01, `area`, `iscrowd` = IsGroupOf.
The hierarchy json is also placed at `oid/annotations/challenge-2019-label500-hierarchy.json`
(downloaded when missing), where the evaluator reads it.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths
from detic_cli.data.prepare.images import file_size
from detic_cli.data.prepare.jsonio import read_json, write_json
from detic_cli.data.prepare.oid_hierarchy import Hierarchy
from detic_cli.errors import DeticError

ANN = "oid/annotations"
BOXES = f"{ANN}/challenge-2019-validation-detection-bbox.csv"
LABELS = f"{ANN}/challenge-2019-validation-detection-human-imagelabels.csv"
CLASSES = f"{ANN}/challenge-2019-classes-description-500.csv"
HIERARCHY = f"{ANN}/challenge-2019-label500-hierarchy.json"
IMAGES = "oid/images/validation"
OUT = f"{ANN}/oid_challenge_2019_val_expanded.json"

TARGET = Target(
    name="oid-val",
    summary="OpenImages challenge-2019 validation boxes and image labels, expanded along the class hierarchy",
    inputs=((BOXES,), (LABELS,), (IMAGES + "/",)),
    outputs=(OUT,),
    source_hint="download the challenge-2019 validation detection csv files "
                "(storage.googleapis.com/openimages/web/challenge2019_downloads.html) to oid/annotations/ "
                "and the validation images to oid/images/validation/",
    downloads=("challenge-2019-classes-description-500.csv", "challenge-2019-label500-hierarchy.json"),
)


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DeticError(f"{path}: missing columns {', '.join(missing)}")
        return list(reader)


def _hierarchy_file(root: Path) -> Path:
    local = root / HIERARCHY
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        shutil.copyfile(metadata.oid_hierarchy_file(), tmp)
        tmp.replace(local)
    return local


def image_records(root: Path, ids: list[str], progress: Progress) -> dict[str, dict[str, Any]]:
    """ImageID -> image record (without labels) for the images whose size can be read."""
    base = root / IMAGES
    flat = bool(ids) and (base / f"{ids[0]}.jpg").is_file()
    out = {}
    progress.start("oid images", len(ids))
    for key in ids:
        name = f"{key}.jpg" if flat else f"{key[0]}/{key}.jpg"
        hw = file_size(base / name)
        if hw is not None:
            out[key] = {"id": len(out) + 1, "file_name": name, "height": hw[0], "width": hw[1]}
        progress.advance(1)
    progress.finish()
    return out


def _add_image_labels(images: dict[str, dict[str, Any]], rows: list[dict[str, str]], tree: Hierarchy) -> None:
    for img in images.values():
        img["pos_category_ids"], img["neg_category_ids"] = [], []
    for row in rows:
        img = images.get(row["ImageID"])
        if img is None:
            continue
        positive = float(row["Confidence"]) == 1
        field = "pos_category_ids" if positive else "neg_category_ids"
        expanded = tree.with_ancestors(row["LabelName"]) if positive else tree.with_descendants(row["LabelName"])
        img[field].extend(c for c in expanded if c not in img[field])


def _annotations(images: dict[str, dict[str, Any]], rows: list[dict[str, str]], tree: Hierarchy) -> list[dict]:
    anns: list[dict[str, Any]] = []
    for row in rows:
        img = images.get(row["ImageID"])
        if img is None:
            continue
        width, height = img["width"], img["height"]
        x1, x2 = float(row["XMin"]) * width, float(row["XMax"]) * width
        y1, y2 = float(row["YMin"]) * height, float(row["YMax"]) * height
        box = [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)]
        for cat in tree.with_ancestors(row["LabelName"]):
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cat, "bbox": box,
                         "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": int(float(row["IsGroupOf"]))})
    return anns


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    classes = metadata.oid_classes(root / CLASSES)
    categories = [{"id": i + 1, "name": name, "freebase_id": mid} for i, (mid, name) in enumerate(classes)]
    tree = Hierarchy(read_json(_hierarchy_file(root)), {c["freebase_id"]: c["id"] for c in categories})
    labels = _rows(root / LABELS, ("ImageID", "LabelName", "Confidence"))
    boxes = _rows(root / BOXES, ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"))
    ids = sorted({r["ImageID"] for r in labels} | {r["ImageID"] for r in boxes})
    images = image_records(root, ids, progress)
    if len(images) < len(ids):
        progress.note(f"oid-val: {len(ids) - len(images)} of {len(ids)} images missing or unreadable under "
                      f"{root / IMAGES}; left out")
    _add_image_labels(images, labels, tree)
    anns = _annotations(images, boxes, tree)
    write_json(outputs[0], {"images": list(images.values()), "annotations": anns, "categories": categories})
    progress.note(f"oid-val: {len(images)} images, {len(anns)} boxes after expansion")
    return outputs
