"""Detections (COCO result dicts) as flat arrays, capped and filtered as the reference tools do.

Order matters only among equal scores, and the reference tools break those ties by the order of
the results list: `position` keeps that order through every stable sort here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.errors import DeticError
from detic_cli.evaluation.groundtruth import GroundTruth, IouType, to_rle


@dataclass
class Detections:
    image: np.ndarray  # index into gt.image_ids
    category: np.ndarray  # index into gt.category_ids
    score: np.ndarray
    position: np.ndarray  # index in the results list
    area: np.ndarray
    geometry: list[Any]

    def __len__(self) -> int:
        return len(self.score)

    def take(self, keep: np.ndarray) -> Detections:
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        geometry = [self.geometry[i] for i in idx.tolist()] if self.geometry else []
        return Detections(
            self.image[idx], self.category[idx], self.score[idx], self.position[idx], self.area[idx], geometry
        )


def check_image_ids(results: list[dict[str, Any]], gt: GroundTruth, *, drop_unknown: bool) -> list[dict[str, Any]]:
    """Results whose image is in the ground truth; unknown ids are an error unless dropped."""
    if not results:
        return results
    ids = np.asarray([r["image_id"] for r in results], dtype=np.int64)
    known = gt.image_index(ids) >= 0
    if known.all():
        return results
    if not drop_unknown:
        unknown = sorted(set(ids[~known].tolist()))
        raise DeticError(
            f"{len(unknown)} image id(s) in the results are not in the ground truth "
            f"(e.g. {unknown[:5]}): the results belong to another dataset"
        )
    return [r for r, k in zip(results, known.tolist()) if k]


def top_per_group(group: np.ndarray, score: np.ndarray, limit: int) -> np.ndarray:
    """Bool mask of the `limit` best-scored entries of each group (ties: earlier entry first)."""
    order = np.lexsort((np.arange(len(score)), -score, group))
    return rank_in_groups(group[order], order, len(score)) < limit


def rank_in_groups(sorted_group: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """For entries sorted by group, each entry's rank inside its group, in original positions."""
    ranks = np.empty(n, dtype=np.int64)
    if n == 0:
        return ranks
    starts = np.r_[0, np.flatnonzero(sorted_group[1:] != sorted_group[:-1]) + 1]
    sizes = np.diff(np.r_[starts, n])
    ranks[order] = np.arange(n) - np.repeat(starts, sizes)
    return ranks


def build_detections(
    results: list[dict[str, Any]],
    gt: GroundTruth,
    *,
    iou_type: IouType,
    max_dets_per_image: int | None,
    max_dets_per_category: int | None = None,
) -> Detections:
    """Arrays of `results` (all image ids known), with the per-category and per-image caps applied.

    Detections of categories outside the ground truth are dropped after the caps, as the
    reference tools drop them when preparing evaluation.
    """
    n = len(results)
    image = gt.image_index(np.asarray([r["image_id"] for r in results], dtype=np.int64).reshape(n))
    cat_ids = np.asarray([r["category_id"] for r in results], dtype=np.int64).reshape(n)
    score = np.asarray([r["score"] for r in results], dtype=np.float64).reshape(n)
    keep = np.ones(n, dtype=bool)
    if max_dets_per_category is not None:
        keep &= top_per_group(cat_ids, score, max_dets_per_category)
    if max_dets_per_image is not None:
        kept = np.flatnonzero(keep)
        keep[kept[~top_per_group(image[kept], score[kept], max_dets_per_image)]] = False
    category = gt.category_index(cat_ids)
    keep &= category >= 0
    idx = np.flatnonzero(keep)
    kept_results = [results[i] for i in idx.tolist()]
    geometry, area = _geometry_and_area(kept_results, gt, image[idx], iou_type)
    return Detections(image[idx], category[idx], score[idx], idx, area, geometry)


def _geometry_and_area(
    results: list[dict[str, Any]], gt: GroundTruth, image: np.ndarray, iou_type: IouType
) -> tuple[list[Any], np.ndarray]:
    if iou_type == "bbox":
        if results and "bbox" not in results[0]:
            raise DeticError("box AP needs 'bbox' (xywh) in every result")
        boxes = [r["bbox"] for r in results]
        wh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return boxes, wh[:, 2] * wh[:, 3]
    if results and "segmentation" not in results[0]:
        raise DeticError("mask AP needs 'segmentation' (RLE) in every result")
    segms = [r["segmentation"] for r in results]
    area = np.asarray([float(mask_utils.area(s)) for s in segms], dtype=np.float64)
    rles = [to_rle(s, int(gt.heights[i]), int(gt.widths[i])) for s, i in zip(segms, image.tolist())]
    return rles, area
