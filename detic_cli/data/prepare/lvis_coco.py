"""`lvis-coco`: LVIS v1 train merged with the COCO 2017 train boxes and masks (original
`tools/merge_lvis_coco.py`), for the `+COCO` rows (dataset `lvis_v1_train+coco`).

COCO categories map to LVIS through their WordNet synsets (lvis-api's `coco_to_synset.json`, hot
dog -> sausage as in the original). For each image that has LVIS annotations (matched to COCO by
the last 16 characters of `coco_url` / `file_name`): the LVIS annotations are kept, then each COCO
annotation is added unless its LVIS class is in the image's `neg_category_ids`, or an LVIS
annotation of the same class overlaps it with IoU >= 0.7. Annotation ids are renumbered 1.. in
that order; segmentations (masks) and every other field are kept; images and categories are LVIS's.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.data.prepare import metadata
from detic_cli.data.prepare.base import Progress, Target, begin, output_paths, read_annotations
from detic_cli.data.prepare.jsonio import write_json

LVIS_TRAIN = "lvis/lvis_v1_train.json"
COCO_TRAIN = "coco/annotations/instances_train2017.json"
MERGED = "lvis/lvis_v1_train+coco_mask.json"
DUPLICATE_IOU = 0.7

TARGET = Target(
    name="lvis-coco",
    summary="LVIS v1 train + COCO train boxes and masks, COCO classes mapped to LVIS synsets",
    inputs=((LVIS_TRAIN,), (COCO_TRAIN,)),
    outputs=(MERGED,),
    source_hint="download lvis_v1_train.json (lvisdataset.org) to lvis/ and instances_train2017.json "
                "(cocodataset.org) to coco/annotations/",
    downloads=("coco_to_synset.json",),
)


def _key(image: dict[str, Any]) -> str:
    return str(image.get("coco_url") or image.get("file_name", ""))[-16:]


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of XYWH boxes `a` (N, 4) and `b` (M, 4) in pixels, computed in float32; 0 where
    they do not intersect."""
    a = a.astype(np.float32).reshape(-1, 4)
    b = b.astype(np.float32).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    area_a, area_b = (ax2 - a[:, 0]) * (ay2 - a[:, 1]), (bx2 - b[:, 0]) * (by2 - b[:, 1])
    union = area_a[:, None] + area_b[None] - inter
    return np.where(inter > 0, inter / np.where(union > 0, union, 1), np.float32(0))


def coco_to_lvis(coco: dict[str, Any], lvis: dict[str, Any]) -> dict[int, int]:
    """COCO category id -> LVIS category id, for the COCO classes whose synset LVIS has."""
    by_synset = {c["synset"]: c["id"] for c in lvis["categories"]}
    synsets = metadata.coco_synsets()
    return {c["id"]: by_synset[synsets[c["id"]]] for c in coco["categories"]
            if synsets.get(c["id"]) in by_synset}


def coco_by_file(coco: dict[str, Any], lvis: dict[str, Any], cat_map: dict[int, int]) -> dict[str, list[dict]]:
    """The COCO annotations that can join LVIS, relabelled (LVIS category and image ids), by file key."""
    lvis_images = {_key(img): img for img in lvis["images"]}
    coco_keys = {img["id"]: _key(img) for img in coco["images"]}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ann in coco["annotations"]:
        key = coco_keys.get(ann["image_id"])
        image = lvis_images.get(key)
        if ann["category_id"] not in cat_map or image is None:
            continue
        category = cat_map[ann["category_id"]]
        if category in image.get("neg_category_ids", []):
            continue
        out[key].append({**ann, "category_id": category, "image_id": image["id"]})
    return out


def merge(lvis: dict[str, Any], coco: dict[str, Any], cat_map: dict[int, int], progress: Progress) -> list[dict]:
    """The merged annotation list (see the module docstring)."""
    from_coco = coco_by_file(coco, lvis, cat_map)
    keys = {img["id"]: _key(img) for img in lvis["images"]}
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ann in lvis["annotations"]:
        by_file[keys[ann["image_id"]]].append(ann)
    merged: list[dict[str, Any]] = []
    progress.start("lvis-coco images", len(by_file))
    for key, lvis_anns in by_file.items():
        extra = from_coco.get(key, [])
        iou = pairwise_iou(np.asarray([a["bbox"] for a in extra]), np.asarray([a["bbox"] for a in lvis_anns]))
        same = np.asarray([[c["category_id"] == v["category_id"] for v in lvis_anns] for c in extra], bool)
        duplicate = ((iou >= DUPLICATE_IOU) & same.reshape(iou.shape)).any(axis=1)
        for ann in lvis_anns + [a for a, dup in zip(extra, duplicate.tolist()) if not dup]:
            merged.append({**ann, "id": len(merged) + 1})
        progress.advance(1)
    progress.finish()
    return merged


def prepare(root: Path, *, force: bool, progress: Progress) -> list[Path]:
    outputs = output_paths(TARGET, root)
    if not begin(TARGET, root, force=force, progress=progress):
        return outputs
    lvis = read_annotations(TARGET, root / LVIS_TRAIN, progress)
    coco = read_annotations(TARGET, root / COCO_TRAIN, progress)
    cat_map = coco_to_lvis(coco, lvis)
    before = len(lvis["annotations"])
    lvis["annotations"] = merge(lvis, coco, cat_map, progress)
    del coco
    write_json(outputs[0], lvis)
    progress.note(f"lvis-coco: {len(cat_map)} COCO classes mapped; {before} LVIS + "
                  f"{len(lvis['annotations']) - before} COCO annotations")
    return outputs
