"""Per-detection true/false positive flags for every area range and IoU threshold.

Only (image, category) pairs holding both ground truth and detections need IoUs and matching; a
detection elsewhere is a false positive unless ignored (area outside the range, or a category the
image's annotation is not exhaustive for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils

from detic_cli.evaluation.detections import Detections
from detic_cli.evaluation.groundtruth import GroundTruth
from detic_cli.evaluation.matching import greedy_match

# Exactly the reference tools' constants (np.arange would drift in the last bit).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = np.asarray([[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]], dtype=np.float64)
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass
class Flags:
    """(A, T, N) true / false positive flags of each detection (neither: ignored)."""

    tp: np.ndarray
    fp: np.ndarray
    num_gt: np.ndarray  # (K, A) non-ignored ground truth per category and area range


def pair_keys(image: np.ndarray, category: np.ndarray, num_images: int) -> np.ndarray:
    return category.astype(np.int64) * max(num_images, 1) + image


def score_order(dt: Detections, num_images: int) -> np.ndarray:
    """Detections sorted by (pair, decreasing score, results order)."""
    return np.lexsort((dt.position, -dt.score, pair_keys(dt.image, dt.category, num_images)))


def compute_flags(gt: GroundTruth, dt: Detections, not_exhaustive: np.ndarray) -> Flags:
    """`dt` must be in `score_order`; `not_exhaustive` marks detections ignored when unmatched."""
    lo, hi = AREA_RANGES[:, 0], AREA_RANGES[:, 1]
    area_out = (dt.area[None, :] < lo[:, None]) | (dt.area[None, :] > hi[:, None])  # (A, N)
    unmatched_ignore = (area_out | not_exhaustive[None, :])[:, None, :]  # (A, 1, N)
    shape = (len(AREA_RANGES), len(IOU_THRESHOLDS), len(dt))
    matched = np.zeros(shape, dtype=bool)
    matched_ignored = np.zeros(shape, dtype=bool)
    gt_out = (gt.area[None, :] < lo[:, None]) | (gt.area[None, :] > hi[:, None])
    gt_ignore = gt.ignore[None, :] | gt_out  # (A, G)
    for d_sl, g_idx in _shared_pairs(gt, dt):
        ious = _ious(gt, dt, d_sl, g_idx)
        _match_pair(ious, gt, g_idx, gt_ignore[:, g_idx], matched[:, :, d_sl], matched_ignored[:, :, d_sl])
    ignored = matched_ignored | (~matched & unmatched_ignore)
    num_gt = _count_gt(gt, ~gt_ignore)
    return Flags(matched & ~ignored, ~matched & ~ignored, num_gt)


def _shared_pairs(gt: GroundTruth, dt: Detections):
    """(slice of sorted detections, ground-truth indices) of each pair holding both."""
    dt_keys = pair_keys(dt.image, dt.category, gt.num_images)
    gt_keys = pair_keys(gt.image, gt.category, gt.num_images)
    gt_order = np.argsort(gt_keys, kind="stable")
    gt_sorted = gt_keys[gt_order]
    keys, starts = np.unique(dt_keys, return_index=True)
    ends = np.r_[starts[1:], len(dt_keys)]
    g_lo = np.searchsorted(gt_sorted, keys, side="left")
    g_hi = np.searchsorted(gt_sorted, keys, side="right")
    for i in np.flatnonzero(g_hi > g_lo).tolist():
        yield slice(int(starts[i]), int(ends[i])), gt_order[g_lo[i] : g_hi[i]]


def _ious(gt: GroundTruth, dt: Detections, d_sl: slice, g_idx: np.ndarray) -> np.ndarray:
    dts = dt.geometry[d_sl]
    gts = [gt.geometry[i] for i in g_idx.tolist()]
    ious = mask_utils.iou(dts, gts, gt.crowd[g_idx].astype(np.uint8).tolist())
    return np.asarray(ious, dtype=np.float64).reshape(len(dts), len(gts))


def _match_pair(
    ious: np.ndarray,
    gt: GroundTruth,
    g_idx: np.ndarray,
    gt_ignore: np.ndarray,
    matched: np.ndarray,
    matched_ignored: np.ndarray,
) -> None:
    """Fill (A, T, D) views for one pair; identical ignore patterns share one matching."""
    crowd, ids = gt.crowd[g_idx], gt.ann_id[g_idx]
    memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for a in range(gt_ignore.shape[0]):
        key = gt_ignore[a].tobytes()
        if key not in memo:
            order = np.argsort(gt_ignore[a], kind="mergesort")
            match = greedy_match(ious[:, order], gt_ignore[a][order], crowd[order], IOU_THRESHOLDS)
            hit = match >= 0
            col = order[np.where(hit, match, 0)]
            # The reference tools record a match by the ground truth's id: id 0 reads as no match.
            memo[key] = (hit & (ids[col] != 0), hit & gt_ignore[a][col])
        matched[a], matched_ignored[a] = memo[key]


def _count_gt(gt: GroundTruth, counted: np.ndarray) -> np.ndarray:
    num_cat = len(gt.category_ids)
    return np.stack([np.bincount(gt.category[c], minlength=num_cat) for c in counted], axis=1)
