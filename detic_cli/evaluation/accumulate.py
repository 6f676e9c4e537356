"""Precision at 101 recall points and final recall per category, as pycocotools/lvis-api compute them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detic_cli.evaluation.pairs import IOU_THRESHOLDS, RECALL_THRESHOLDS, Flags


@dataclass
class Accumulated:
    precision: np.ndarray  # (T, R, K, A, M); -1 where a category has no ground truth
    recall: np.ndarray  # (T, K, A, M)


def accumulate(
    flags: Flags,
    category: np.ndarray,
    rank_order: np.ndarray,
    pair_rank: np.ndarray | None,
    max_dets: tuple[int, ...] | None,
) -> Accumulated:
    """`rank_order` sorts detections by (category, decreasing score, image, results order).

    `pair_rank` (rank inside its image and category) with `max_dets` gives the COCO maxDets
    columns; without them there is one column holding every detection.
    """
    num_cat, num_area = flags.num_gt.shape
    limits = max_dets or (0,)
    shape = (len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), num_cat, num_area, len(limits))
    precision = -np.ones(shape)
    recall = -np.ones((len(IOU_THRESHOLDS), num_cat, num_area, len(limits)))
    tp, fp = flags.tp[:, :, rank_order], flags.fp[:, :, rank_order]
    sorted_cat = category[rank_order]
    bounds = np.searchsorted(sorted_cat, np.arange(num_cat + 1), side="left")
    for k in np.flatnonzero(flags.num_gt.max(axis=1) > 0).tolist():
        sl = slice(int(bounds[k]), int(bounds[k + 1]))
        for m, limit in enumerate(limits):
            sel = None if pair_rank is None or not limit else pair_rank[rank_order][sl] < limit
            for a in range(num_area):
                num_gt = int(flags.num_gt[k, a])
                if num_gt == 0:
                    continue
                tps, fps = tp[a, :, sl], fp[a, :, sl]
                if sel is not None:
                    tps, fps = tps[:, sel], fps[:, sel]
                precision[:, :, k, a, m], recall[:, k, a, m] = _curve(tps, fps, num_gt)
    return Accumulated(precision, recall)


def _curve(tps: np.ndarray, fps: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, R) interpolated precision at the recall thresholds and (T,) final recall."""
    tp_sum = np.cumsum(tps, axis=1).astype(float)
    fp_sum = np.cumsum(fps, axis=1).astype(float)
    num_dt = tp_sum.shape[1]
    rc = tp_sum / num_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    idx = _left_insertion(rc, RECALL_THRESHOLDS)  # (T, R), searchsorted(side="left") per row
    valid = idx < num_dt
    q = np.zeros(idx.shape)
    q[valid] = pr[np.nonzero(valid)[0], idx[valid]]
    final = rc[:, -1] if num_dt else np.zeros(tp_sum.shape[0])
    return q, final


def _left_insertion(sorted_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """np.searchsorted(row, values, side="left") for each (non-decreasing) row."""
    if sorted_rows.size * len(values) <= 4_000_000:
        return np.count_nonzero(sorted_rows[:, :, None] < values[None, None, :], axis=1)
    return np.stack([np.searchsorted(row, values, side="left") for row in sorted_rows])
