"""Ground truth of a COCO- or LVIS-format annotation file, as flat arrays for the evaluator.

Two rule sets decide which annotations count, exactly as the reference tools do:
- `lvis` (lvis-api): only annotations with 0 < area < inf; `ignore` from the optional field;
  no crowd regions; per-image `neg_category_ids` / `not_exhaustive_category_ids`.
- `coco` (pycocotools): every annotation; `ignore` is `iscrowd`, and crowd regions are matched
  by intersection over the detection's area.
- `oid` (Detic's OpenImages evaluator on lvis-api): the `lvis` area rule, `iscrowd` marks
  group-of boxes, nothing is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.errors import DeticError
from detic_cli.utils import read_dataset_json

Rules = Literal["lvis", "coco", "oid"]
IouType = Literal["bbox", "segm"]


def load_json(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """An annotation file's content; a dict is returned as is."""
    if isinstance(source, dict):
        return source
    return read_dataset_json(source)


def to_rle(segm: Any, height: int, width: int) -> dict[str, Any]:
    """Polygons, uncompressed or compressed RLE -> compressed RLE (as pycocotools' annToRLE)."""
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, height, width)
    return segm


@dataclass
class GroundTruth:
    """Annotations that take part in evaluation, indexed by sorted image and category ids."""

    data: dict[str, Any]
    image_ids: np.ndarray  # sorted unique ids
    category_ids: np.ndarray  # sorted unique ids
    image: np.ndarray  # per annotation: index into image_ids
    category: np.ndarray  # per annotation: index into category_ids
    ann_id: np.ndarray
    area: np.ndarray
    ignore: np.ndarray  # bool
    crowd: np.ndarray  # bool
    geometry: list[Any]  # xywh boxes or compressed RLEs
    heights: np.ndarray
    widths: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def image_index(self, ids: np.ndarray) -> np.ndarray:
        """Index of each image id; -1 where the id is not in the ground truth."""
        pos = np.searchsorted(self.image_ids, ids)
        pos = np.clip(pos, 0, max(len(self.image_ids) - 1, 0))
        found = len(self.image_ids) > 0 and self.image_ids[pos] == ids
        return np.where(found, pos, -1)

    def category_index(self, ids: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.category_ids, ids)
        pos = np.clip(pos, 0, max(len(self.category_ids) - 1, 0))
        found = len(self.category_ids) > 0 and self.category_ids[pos] == ids
        return np.where(found, pos, -1)

    def per_image_category_sets(self, field: str) -> list[frozenset[int]]:
        """`neg_category_ids` / `not_exhaustive_category_ids` per image, as category indices."""
        by_id = {img["id"]: img for img in self.data["images"]}
        out = []
        for image_id in self.image_ids.tolist():
            ids = np.asarray(by_id[image_id].get(field, []), dtype=np.int64)
            idx = self.category_index(ids)
            out.append(frozenset(idx[idx >= 0].tolist()))
        return out


def build_ground_truth(data: dict[str, Any], *, rules: Rules, iou_type: IouType) -> GroundTruth:
    images = data["images"]
    image_ids = np.unique(np.asarray([img["id"] for img in images], dtype=np.int64))
    category_ids = np.unique(np.asarray([c["id"] for c in data["categories"]], dtype=np.int64))
    sizes = {img["id"]: (img.get("height", 0), img.get("width", 0)) for img in images}
    heights = np.asarray([sizes[i][0] for i in image_ids.tolist()], dtype=np.int64)
    widths = np.asarray([sizes[i][1] for i in image_ids.tolist()], dtype=np.int64)
    gt = GroundTruth(data, image_ids, category_ids, *_empty_annotation_arrays(), heights, widths)
    anns = _kept_annotations(gt, data.get("annotations", []), rules)
    gt.image = gt.image_index(np.asarray([a["image_id"] for a in anns], dtype=np.int64))
    gt.category = gt.category_index(np.asarray([a["category_id"] for a in anns], dtype=np.int64))
    gt.ann_id = np.asarray([a["id"] for a in anns], dtype=np.int64)
    gt.area = np.asarray([a["area"] for a in anns], dtype=np.float64)
    gt.crowd = np.asarray([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
    gt.ignore = gt.crowd.copy()
    if rules == "lvis":
        gt.ignore = np.asarray([bool(a.get("ignore", 0)) for a in anns], dtype=bool)
        gt.crowd[:] = False
    elif rules == "oid":
        gt.ignore[:] = False
    gt.geometry = _geometries(gt, anns, iou_type)
    return gt


def _empty_annotation_arrays() -> tuple[Any, ...]:
    ints = np.zeros(0, dtype=np.int64)
    return ints, ints, ints, np.zeros(0), np.zeros(0, bool), np.zeros(0, bool), []


def _kept_annotations(gt: GroundTruth, anns: list[dict[str, Any]], rules: Rules) -> list[dict[str, Any]]:
    if not anns:
        return []
    img = gt.image_index(np.asarray([a["image_id"] for a in anns], dtype=np.int64))
    cat = gt.category_index(np.asarray([a["category_id"] for a in anns], dtype=np.int64))
    keep = (img >= 0) & (cat >= 0)
    if rules in ("lvis", "oid"):
        area = np.asarray([a["area"] for a in anns], dtype=np.float64)
        keep &= (area > 0) & (area < np.inf)
    return [a for a, k in zip(anns, keep.tolist()) if k]


def _geometries(gt: GroundTruth, anns: list[dict[str, Any]], iou_type: IouType) -> list[Any]:
    if iou_type == "bbox":
        return [a["bbox"] for a in anns]
    out = []
    for a, i in zip(anns, gt.image.tolist()):
        if "segmentation" not in a:
            raise DeticError(f"annotation {a['id']} has no 'segmentation': mask AP needs masks")
        out.append(to_rle(a["segmentation"], int(gt.heights[i]), int(gt.widths[i])))
    return out
