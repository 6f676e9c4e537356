"""OpenImages challenge box AP50 (Google's matching, group-of boxes), as Detic's OIDEval.

The ground truth (`oid_challenge_2019_val_expanded.json`) already carries every box also under
its ancestor classes. With the hierarchy, each detection is copied to every ancestor class as
well ("AP50_expand", the number the model zoo reports). A detection counts only on images where
its class is verified present or absent (`pos_category_ids` / `neg_category_ids`); at most 300
per image, taken before the expansion.

Matching per image and class, detections by decreasing score: a detection takes the regular box
it overlaps most if IoU >= 0.5 and that box is still free, else it is a false positive unless it
lies inside a group-of box (IoA >= 0.5); each group-of box then counts once, as one true positive
at the best score among its detections. AP is the VOC area under the monotone PR curve.

Detic's implementation permutes the IoU rows a second time, which is the identity when each
image's results come sorted by score, as detectron2 and `results.to_coco_results` write them;
here the rows always follow the detections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.errors import DeticError
from detic_cli.evaluation.detections import Detections, build_detections, check_image_ids
from detic_cli.evaluation.groundtruth import GroundTruth, build_ground_truth
from detic_cli.evaluation.pairs import pair_keys, score_order
from detic_cli.evaluation.summary import percent
from detic_cli.utils import read_json

OID_MAX_DETS = 300
Entries = tuple[np.ndarray, np.ndarray]  # scores, true-positive flags


def evaluate_oid(
    data: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    hierarchy: str | Path | dict[str, Any] | None = None,
    drop_unknown_images: bool = False,
) -> dict[str, float]:
    """{"AP50"} and, with the label hierarchy, {"AP50_expand"} in percent."""
    gt = build_ground_truth(data, rules="oid", iou_type="bbox")
    results = check_image_ids(results, gt, drop_unknown=drop_unknown_images)
    dt = build_detections(results, gt, iou_type="bbox", max_dets_per_image=OID_MAX_DETS)
    out = {"AP50": percent(oid_ap50(gt, dt))}
    if hierarchy is not None:
        ancestors = ancestor_indices(gt, _read_hierarchy(hierarchy))
        out["AP50_expand"] = percent(oid_ap50(gt, expand_to_ancestors(dt, ancestors)))
    return out


def ancestor_indices(gt: GroundTruth, hierarchy: dict[str, Any]) -> list[list[int]]:
    """Per category index, the indices of all its ancestors in the label hierarchy (root excluded)."""
    by_freebase = {c.get("freebase_id"): c["id"] for c in gt.data["categories"]}
    index = {int(i): k for k, i in enumerate(gt.category_ids.tolist())}
    parents: list[set[int]] = [set() for _ in gt.category_ids]

    def descendants(node: dict[str, Any], k: int | None) -> set[int]:
        below: set[int] = set()
        for child in node.get("Subcategory", []):
            if child["LabelName"] not in by_freebase:
                raise DeticError(f"hierarchy label {child['LabelName']} is not a category of the ground truth")
            below |= descendants(child, index[by_freebase[child["LabelName"]]])
        if k is not None:
            for c in below:
                parents[c].add(k)
            below.add(k)
        return below

    descendants(hierarchy, None)
    return [sorted(p) for p in parents]


def expand_to_ancestors(dt: Detections, ancestors: list[list[int]]) -> Detections:
    """Each detection once for its class and once for every ancestor class."""
    counts = np.asarray([1 + len(ancestors[c]) for c in dt.category.tolist()], dtype=np.int64)
    idx = np.repeat(np.arange(len(dt)), counts)
    out = dt.take(idx)
    out.category = np.asarray(
        [k for c in dt.category.tolist() for k in [c, *ancestors[c]]], dtype=np.int64
    ).reshape(len(idx))
    return out


def oid_ap50(gt: GroundTruth, dt: Detections) -> float:
    """Mean AP50 over categories with ground truth, in [0, 1] (-1 when there is none)."""
    dt = dt.take((dt.area > 0) & (dt.area < np.inf) & _verified(gt, dt))
    dt = dt.take(score_order(dt, gt.num_images))
    per_cat: list[list[tuple[int, Entries]]] = [[] for _ in gt.category_ids]
    for img, cat, entries in _pair_entries(gt, dt):
        per_cat[cat].append((img, entries))
    num_gt = np.bincount(gt.category, minlength=len(gt.category_ids))
    aps = [_category_ap(per_cat[k], int(num_gt[k])) for k in np.flatnonzero(num_gt > 0).tolist()]
    return float(np.mean(aps)) if aps else -1.0


def _verified(gt: GroundTruth, dt: Detections) -> np.ndarray:
    sets = [p | n for p, n in zip(gt.per_image_category_sets("pos_category_ids"),
                                   gt.per_image_category_sets("neg_category_ids"))]  # fmt: skip
    images = [i for i, cats in enumerate(sets) for _ in cats]
    cats = [c for cs in sets for c in sorted(cs)]
    listed = pair_keys(np.asarray(images, dtype=np.int64), np.asarray(cats, dtype=np.int64), gt.num_images)
    return np.isin(pair_keys(dt.image, dt.category, gt.num_images), listed)


def _pair_entries(gt: GroundTruth, dt: Detections):
    """(image, category, entries) of each pair holding detections or ground truth."""
    dt_keys = pair_keys(dt.image, dt.category, gt.num_images)
    gt_keys = pair_keys(gt.image, gt.category, gt.num_images)
    gt_order = np.argsort(gt_keys, kind="stable")
    for key in np.union1d(dt_keys, gt_keys).tolist():
        d_sl = slice(*np.searchsorted(dt_keys, [key, key + 1]).tolist())
        g_lo, g_hi = np.searchsorted(gt_keys[gt_order], [key, key + 1])
        g_idx = gt_order[g_lo:g_hi]
        cat, img = divmod(key, max(gt.num_images, 1))
        yield img, cat, _match_google(gt, dt, d_sl, g_idx)


def _match_google(gt: GroundTruth, dt: Detections, d_sl: slice, g_idx: np.ndarray) -> Entries:
    scores = dt.score[d_sl]
    num_dt = len(scores)
    if num_dt == 0 or len(g_idx) == 0:
        return scores, np.zeros(num_dt, dtype=bool)
    crowd = gt.crowd[g_idx]
    ious = np.asarray(
        mask_utils.iou(dt.geometry[d_sl], [gt.geometry[i] for i in g_idx.tolist()], crowd.astype(np.uint8).tolist())
    ).reshape(num_dt, len(g_idx))
    tp = _first_hits(ious[:, ~crowd], np.ones(num_dt, dtype=bool))
    grouped = np.zeros(num_dt, dtype=bool)
    group_scores = np.zeros(0)
    if crowd.any():
        ioa = ious[:, crowd]
        best = np.argmax(ioa, axis=1)
        grouped = ~tp & (ioa[np.arange(num_dt), best] >= 0.5)
        group_max = np.zeros(ioa.shape[1])
        np.maximum.at(group_max, best[grouped], scores[grouped])
        group_scores = group_max[group_max > 0]
    keep = ~grouped
    return np.r_[scores[keep], group_scores], np.r_[tp[keep], np.ones(len(group_scores), dtype=bool)]


def _first_hits(iou: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """A detection is a true positive if it is the first over 0.5 on the box it overlaps most."""
    tp = np.zeros(iou.shape[0], dtype=bool)
    if iou.shape[1] == 0:
        return tp
    best = np.argmax(iou, axis=1)
    cand = np.flatnonzero(eligible & (iou[np.arange(iou.shape[0]), best] >= 0.5))
    _, first = np.unique(best[cand], return_index=True)
    tp[cand[first]] = True
    return tp


def _category_ap(entries: list[tuple[int, Entries]], num_gt: int) -> float:
    entries.sort(key=lambda e: e[0])  # image order, as the reference concatenates
    scores = np.concatenate([e[1][0] for e in entries]) if entries else np.zeros(0)
    tps = np.concatenate([e[1][1] for e in entries]) if entries else np.zeros(0, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(tps[order]).astype(float)
    fp = np.cumsum(~tps[order]).astype(float)
    if len(tp) == 0:
        return 0.0
    rc = tp / num_gt
    pr = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[::-1])[::-1]
    recall = np.concatenate([[0], rc, [1]])
    precision = np.maximum.accumulate(np.concatenate([[0], pr, [0]])[::-1])[::-1]
    changed = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[changed] - recall[changed - 1]) * precision[changed]))


def _read_hierarchy(hierarchy: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The OpenImages label hierarchy tree ({"LabelName", "Subcategory": [...]}) from a dict or a JSON file."""
    if isinstance(hierarchy, dict):
        return hierarchy
    tree = read_json(hierarchy)
    if not isinstance(tree, dict) or "LabelName" not in tree:
        raise DeticError(f"{hierarchy}: not an OpenImages label hierarchy (a JSON object with 'LabelName')")
    return tree
