"""Training records from LVIS/COCO-format json files, as Detic and detectron2 read them.

A record is a small dict per image:
  "file_name" (str, "" for images read from tar files, which carry "tar_index": int),
  "height", "width" (original image size in pixels), "image_id" (int), "dataset_source" (int),
  "boxes" float32 (N, 4) XYWH in original pixels, "classes" int64 (N,) contiguous class index,
  "crowd" bool (N,), "segmentations" (list of N polygon lists or RLE dicts, or None when masks are
  not loaded), and when the json has them "pos_category_ids" (contiguous indices) and "captions".
Contiguous index = position of the category id in the sorted category ids of the json (LVIS v1: id - 1).
Masks stay in their json form; the mapper rasterizes them after augmentation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detic_cli.data.catalog import TrainDataset
from detic_cli.data.image_io import oriented_size
from detic_cli.errors import DeticError
from detic_cli.utils import read_dataset_json

Record = dict[str, Any]


@dataclass
class LoadedDataset:
    """Records (sorted by image id) and the class names in contiguous order."""

    records: list[Record]
    class_names: list[str]
    category_ids: list[int]  # json category id of each contiguous index


def load_dataset(dataset: TrainDataset, *, with_masks: bool, dataset_source: int = 0) -> LoadedDataset:
    """Read `dataset.annotation` in its style ("lvis" or "coco")."""
    data = read_dataset_json(dataset.annotation, keys=("images",))
    if dataset.style == "coco":
        return load_coco_json(data, dataset.image_root, with_masks=with_masks, dataset_source=dataset_source,
                              source=str(dataset.annotation))
    return load_lvis_json(data, dataset.image_root, with_masks=with_masks, dataset_source=dataset_source,
                          source=str(dataset.annotation))



def category_map(data: dict[str, Any]) -> tuple[dict[int, int], list[str], list[int]]:
    """json category id -> contiguous index (sorted ids), names and ids in that order."""
    cats = sorted(data.get("categories", []), key=lambda c: c["id"])
    names = [c.get("name", str(c["id"])) for c in cats]
    return {c["id"]: i for i, c in enumerate(cats)}, names, [c["id"] for c in cats]


def load_lvis_json(data: dict[str, Any], image_root: Path, *, with_masks: bool, dataset_source: int = 0,
                   source: str = "json") -> LoadedDataset:
    """Detic's LVIS reader: crowd annotations dropped, `pos_category_ids` and `captions` kept.

    The file is `file_name` under the image root (a `COCO_...` name keeps its last 16 characters),
    else the `split/name` tail of `coco_url` (or just `name` when the root is the split folder).
    """
    id_map, names, ids = category_map(data)
    by_image = _annotations_by_image(data)
    images = sorted(data["images"], key=lambda im: im["id"])
    flat = _coco_url_is_flat(images, image_root)
    records = []
    for img in images:
        rec = _base_record(img, _lvis_file(img, image_root, flat), dataset_source)
        anns = [a for a in by_image.get(img["id"], []) if not a.get("iscrowd", 0)]
        _set_instances(rec, anns, id_map, with_masks, source)
        if "pos_category_ids" in img:
            rec["pos_category_ids"] = [_contiguous(id_map, c, source) for c in img["pos_category_ids"]]
        if "captions" in img:
            rec["captions"] = list(img["captions"])
        records.append(rec)
    return LoadedDataset(records, names, ids)


def load_coco_json(data: dict[str, Any], image_root: Path, *, with_masks: bool, dataset_source: int = 0,
                   source: str = "json") -> LoadedDataset:
    """detectron2's COCO reader: crowd kept (flagged), instances whose polygons are all invalid dropped."""
    id_map, names, ids = category_map(data)
    by_image = _annotations_by_image(data)
    records = []
    for img in sorted(data["images"], key=lambda im: im["id"]):
        rec = _base_record(img, str(image_root / img["file_name"]), dataset_source)
        anns = []
        for ann in by_image.get(img["id"], []):
            segm = ann.get("segmentation")
            if isinstance(segm, list) and segm:  # detectron2 keeps a box whose segmentation is [] (box-only files)
                segm = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
                if not segm:
                    continue
                ann = {**ann, "segmentation": segm}
            if not ann.get("ignore", 0):
                anns.append(ann)
        _set_instances(rec, anns, id_map, with_masks, source)
        records.append(rec)
    return LoadedDataset(records, names, ids)


def _annotations_by_image(data: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations", []):
        out[ann["image_id"]].append(ann)
    return out


def _base_record(img: dict[str, Any], file_name: str, dataset_source: int) -> Record:
    height, width = img.get("height"), img.get("width")
    if (not height or not width) and file_name:
        height, width = image_size(Path(file_name))
    rec: Record = {"file_name": file_name, "height": int(height), "width": int(width),
                   "image_id": int(img["id"]), "dataset_source": dataset_source}
    if not file_name and "tar_index" in img:
        rec["tar_index"] = int(img["tar_index"])
    return rec


def _set_instances(rec: Record, anns: list[dict[str, Any]], id_map: dict[int, int], with_masks: bool,
                   source: str) -> None:
    for ann in anns:
        if len(ann.get("bbox", ())) != 4:
            raise DeticError(f"{source}: annotation {ann.get('id')} has no 4-number bbox")
    rec["boxes"] = np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
    rec["classes"] = np.asarray([_contiguous(id_map, a["category_id"], source) for a in anns], dtype=np.int64)
    rec["crowd"] = np.asarray([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
    rec["segmentations"] = [a.get("segmentation") for a in anns] if with_masks else None
    if with_masks and any(s is None for s in rec["segmentations"]):
        raise DeticError(f"{source}: image {rec['image_id']} has an annotation without segmentation, "
                         "but masks were asked for (MODEL.MASK_ON)")


def _contiguous(id_map: dict[int, int], cat_id: int, source: str) -> int:
    try:
        return id_map[cat_id]
    except KeyError as exc:
        raise DeticError(f"{source}: category id {cat_id} is not in its 'categories' list") from exc


def _lvis_file(img: dict[str, Any], image_root: Path, flat: bool) -> str:
    name = img.get("file_name")
    if isinstance(name, str) and name:
        return str(image_root / (name[-16:] if name.startswith("COCO") else name))
    url = img.get("coco_url")
    if isinstance(url, str) and url:
        parts = url.split("/")
        return str(image_root / parts[-1]) if flat else str(image_root / parts[-2] / parts[-1])
    if "tar_index" in img:
        return ""
    raise DeticError(f"image {img.get('id')} has no file_name, coco_url or tar_index")


def _coco_url_is_flat(images: list[dict[str, Any]], image_root: Path) -> bool:
    """Whether `coco_url` files sit directly in the root (root = coco/train2017) instead of root/split/."""
    for img in images:
        url = img.get("coco_url")
        if not img.get("file_name") and isinstance(url, str) and url:
            parts = url.split("/")
            return not (image_root / parts[-2] / parts[-1]).exists() and (image_root / parts[-1]).exists()
    return False


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, after EXIF orientation."""
    try:
        return oriented_size(path)
    except (OSError, ValueError) as exc:
        raise DeticError(f"{path}: cannot read the image size ({exc}); add height/width to the json") from exc


def drop_images_without_boxes(records: list[Record]) -> list[Record]:
    """detectron2's FILTER_EMPTY_ANNOTATIONS: keep images with at least one non-crowd box."""
    return [r for r in records if bool((~r["crowd"]).any())]
