"""COCO AP as pycocotools computes it: crowd regions, maxDets 1/10/100 per image and category."""

from __future__ import annotations

from typing import Any

import numpy as np

from detic_cli.evaluation.accumulate import Accumulated, accumulate
from detic_cli.evaluation.detections import build_detections, check_image_ids, rank_in_groups
from detic_cli.evaluation.groundtruth import GroundTruth, IouType, build_ground_truth
from detic_cli.evaluation.pairs import compute_flags, pair_keys, score_order
from detic_cli.evaluation.summary import mean_valid, percent, select

COCO_MAX_DETS = (1, 10, 100)


def evaluate_coco(
    data: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    iou_type: IouType = "bbox",
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
    drop_unknown_images: bool = False,
) -> dict[str, float]:
    """The 12 COCO numbers (AP, AP50, AP75, APs/m/l, AR@1/10/100, ARs/m/l) in percent."""
    gt = build_ground_truth(data, rules="coco", iou_type=iou_type)
    acc = coco_accumulate(gt, results, iou_type=iou_type, max_dets=max_dets, drop_unknown_images=drop_unknown_images)
    return summarize_coco(acc, max_dets)


def coco_accumulate(
    gt: GroundTruth,
    results: list[dict[str, Any]],
    *,
    iou_type: IouType,
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
    drop_unknown_images: bool = False,
) -> Accumulated:
    max_dets = tuple(sorted(max_dets))
    results = check_image_ids(results, gt, drop_unknown=drop_unknown_images)
    dt = build_detections(results, gt, iou_type=iou_type, max_dets_per_image=None)
    dt = dt.take(score_order(dt, gt.num_images))
    keys = pair_keys(dt.image, dt.category, gt.num_images)
    pair_rank = rank_in_groups(keys, np.arange(len(dt)), len(dt))
    keep = pair_rank < max_dets[-1]
    dt, pair_rank = dt.take(keep), pair_rank[keep]
    flags = compute_flags(gt, dt, np.zeros(len(dt), dtype=bool))
    rank_order = np.lexsort((dt.position, dt.image, -dt.score, dt.category))
    return accumulate(flags, dt.category, rank_order, pair_rank, max_dets)


def summarize_coco(acc: Accumulated, max_dets: tuple[int, ...] = COCO_MAX_DETS) -> dict[str, float]:
    max_dets = tuple(sorted(max_dets))
    last = max_dets[-1]
    p, r = acc.precision, acc.recall

    def ap(m: int, **kw: Any) -> float:
        return mean_valid(select(p[..., max_dets.index(m)], **kw))

    def ar(m: int, **kw: Any) -> float:
        return mean_valid(select(r[..., max_dets.index(m)], **kw))

    out = {
        "AP": ap(last),
        "AP50": ap(last, iou=0.5),
        "AP75": ap(last, iou=0.75),
        "APs": ap(last, area="small"),
        "APm": ap(last, area="medium"),
        "APl": ap(last, area="large"),
    }
    out.update({f"AR@{m}": ar(m) for m in max_dets})
    out.update({f"AR{a[0]}@{last}": ar(last, area=a) for a in ("small", "medium", "large")})
    return {k: percent(v) for k, v in out.items()}


def per_category_ap50(acc: Accumulated) -> np.ndarray:
    """AP50 of each category in percent (area all, largest maxDets); NaN without ground truth."""
    p = acc.precision[0, :, :, 0, -1]  # (R, K)
    out = np.full(p.shape[1], np.nan)
    for k in range(p.shape[1]):
        valid = p[:, k][p[:, k] > -1]
        if valid.size:
            out[k] = float(np.mean(valid)) * 100.0
    return out
