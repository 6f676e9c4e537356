"""LVIS AP with the federated rules of lvis-api (and the fixed-AP protocol of Dave et al. 2021).

Standard: at most 300 detections per image (the best-scored), detections of a category count
only on images where it is annotated as present or absent (`neg_category_ids`), and unmatched
detections of `not_exhaustive_category_ids` are ignored. Fixed AP: the 10,000 best detections of
each category over the whole set, no per-image cap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detic_cli.evaluation.accumulate import Accumulated, accumulate
from detic_cli.evaluation.detections import Detections, build_detections, check_image_ids
from detic_cli.evaluation.groundtruth import GroundTruth, IouType, build_ground_truth
from detic_cli.evaluation.pairs import compute_flags, pair_keys, score_order
from detic_cli.evaluation.summary import mean_valid, percent, select

LVIS_MAX_DETS = 300
FIXED_AP_DETS_PER_CATEGORY = 10_000
FREQUENCIES = ("r", "c", "f")


def evaluate_lvis(
    data: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    iou_type: IouType = "bbox",
    max_dets_per_image: int = LVIS_MAX_DETS,
    fixed_ap: bool = False,
    drop_unknown_images: bool = False,
) -> dict[str, float]:
    """AP, AP50, AP75, APs/m/l, APr/c/f and AR@N in percent (NaN where nothing is annotated)."""
    gt = build_ground_truth(data, rules="lvis", iou_type=iou_type)
    acc = lvis_accumulate(
        gt, results, iou_type=iou_type, max_dets_per_image=max_dets_per_image,
        fixed_ap=fixed_ap, drop_unknown_images=drop_unknown_images,
    )
    return summarize_lvis(acc, frequency_groups(gt), "-1" if fixed_ap else str(max_dets_per_image))


def lvis_accumulate(
    gt: GroundTruth,
    results: list[dict[str, Any]],
    *,
    iou_type: IouType,
    max_dets_per_image: int = LVIS_MAX_DETS,
    fixed_ap: bool = False,
    drop_unknown_images: bool = False,
) -> Accumulated:
    results = check_image_ids(results, gt, drop_unknown=drop_unknown_images)
    dt = build_detections(
        results, gt, iou_type=iou_type,
        max_dets_per_image=None if fixed_ap else max_dets_per_image,
        max_dets_per_category=FIXED_AP_DETS_PER_CATEGORY if fixed_ap else None,
    )
    dt = dt.take((dt.area > 0) & (dt.area < np.inf))
    dt = dt.take(_federated_keep(gt, dt))
    dt = dt.take(score_order(dt, gt.num_images))
    not_exhaustive = _pairs_in(gt, dt, gt.per_image_category_sets("not_exhaustive_category_ids"))
    flags = compute_flags(gt, dt, not_exhaustive)
    rank_order = np.lexsort((dt.position, dt.image, -dt.score, dt.category))
    return accumulate(flags, dt.category, rank_order, None, None)


def _federated_keep(gt: GroundTruth, dt: Detections) -> np.ndarray:
    """Detections of categories annotated in their image: present (has ground truth) or negative."""
    present = np.unique(pair_keys(gt.image, gt.category, gt.num_images))
    keys = pair_keys(dt.image, dt.category, gt.num_images)
    return np.isin(keys, present) | _pairs_in(gt, dt, gt.per_image_category_sets("neg_category_ids"))


def _pairs_in(gt: GroundTruth, dt: Detections, per_image: list[frozenset[int]]) -> np.ndarray:
    images = [i for i, cats in enumerate(per_image) for _ in cats]
    cats = [c for cs in per_image for c in sorted(cs)]
    listed = pair_keys(np.asarray(images, dtype=np.int64), np.asarray(cats, dtype=np.int64), gt.num_images)
    return np.isin(pair_keys(dt.image, dt.category, gt.num_images), listed)


def frequency_groups(gt: GroundTruth) -> list[list[int]]:
    """Category indices per frequency r, c, f (lvis-api needs every category's `frequency`)."""
    freq = {c["id"]: c.get("frequency") for c in gt.data["categories"]}
    groups: list[list[int]] = [[] for _ in FREQUENCIES]
    for k, cat_id in enumerate(gt.category_ids.tolist()):
        if freq[cat_id] in FREQUENCIES:
            groups[FREQUENCIES.index(freq[cat_id])].append(k)
    return groups


def summarize_lvis(acc: Accumulated, groups: list[list[int]], max_dets_label: str) -> dict[str, float]:
    p, r = acc.precision[..., 0], acc.recall[..., 0]
    out = {
        "AP": mean_valid(select(p)),
        "AP50": mean_valid(select(p, iou=0.5)),
        "AP75": mean_valid(select(p, iou=0.75)),
        "APs": mean_valid(select(p, area="small")),
        "APm": mean_valid(select(p, area="medium")),
        "APl": mean_valid(select(p, area="large")),
    }
    for name, group in zip(("APr", "APc", "APf"), groups):
        out[name] = mean_valid(select(p, categories=group))
    out[f"AR@{max_dets_label}"] = mean_valid(select(r))
    for area in ("small", "medium", "large"):
        out[f"AR{area[0]}@{max_dets_label}"] = mean_valid(select(r, area=area))
    return {k: percent(v) for k, v in out.items()}
