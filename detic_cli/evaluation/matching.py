"""Greedy detection-to-ground-truth matching of one (image, category), as pycocotools/lvis-api do.

Detections are taken by decreasing score. At each IoU threshold a detection goes to the not yet
matched ground truth with the highest IoU >= threshold (the last one on equal IoU), preferring
regular over ignored ground truth; crowd regions can take any number of detections.
"""

from __future__ import annotations

import numpy as np

SMALL_PAIR = 16  # up to this many ground-truth objects, plain Python beats numpy's per-call cost


def greedy_match(
    ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Matched ground-truth column per (threshold, detection), -1 where unmatched.

    `ious` is (D, G) with detections sorted by score and ground truth sorted ignored-last.
    """
    num_thr = len(thresholds)
    num_dt, num_gt = ious.shape
    match = np.full((num_thr, num_dt), -1, dtype=np.int64)
    if num_dt == 0 or num_gt == 0:
        return match
    thr = np.minimum(thresholds, 1 - 1e-10)
    if num_gt == 1:
        return _match_single(ious[:, 0], bool(gt_crowd[0]), thr, match)
    if num_gt <= SMALL_PAIR:
        return _match_loops(ious, gt_ignore, gt_crowd, thr, match)
    num_regular = int(np.count_nonzero(~gt_ignore))
    free = np.ones((num_thr, num_gt), dtype=bool)
    rows = np.arange(num_thr)
    for d in np.flatnonzero(ious.max(axis=1) >= thr.min()).tolist():
        ok = (ious[d][None, :] >= thr[:, None]) & (free | gt_crowd[None, :])
        vals = np.where(ok, ious[d][None, :], -1.0)
        chosen = _last_argmax(vals[:, :num_regular])
        if num_regular < num_gt:
            ignored = _last_argmax(vals[:, num_regular:])
            chosen = np.where((chosen < 0) & (ignored >= 0), ignored + num_regular, chosen)
        hit = chosen >= 0
        match[hit, d] = chosen[hit]
        free[rows[hit], chosen[hit]] = False
    return match


def _last_argmax(vals: np.ndarray) -> np.ndarray:
    """Per row, the last column holding the row maximum if that maximum is >= 0, else -1."""
    if vals.shape[1] == 0:
        return np.full(vals.shape[0], -1, dtype=np.int64)
    last = vals.shape[1] - 1 - np.argmax(vals[:, ::-1], axis=1)
    best = vals[np.arange(vals.shape[0]), last]
    return np.where(best >= 0, last, -1)


def _match_single(iou: np.ndarray, crowd: bool, thr: np.ndarray, match: np.ndarray) -> np.ndarray:
    """One ground truth: the first detection over each threshold takes it (every one, if crowd)."""
    over = iou[None, :] >= thr[:, None]  # (T, D)
    if crowd:
        match[over] = 0
        return match
    first = np.argmax(over, axis=1)
    has = over[np.arange(len(thr)), first]
    match[np.flatnonzero(has), first[has]] = 0
    return match


def _match_loops(
    ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thr: np.ndarray, match: np.ndarray
) -> np.ndarray:
    """The reference loop itself, over detections that reach the lowest threshold."""
    best_iou = ious.max(axis=1)
    cand = np.flatnonzero(best_iou >= thr.min())
    rows, reach = ious[cand].tolist(), best_iou[cand].tolist()
    ignore, crowd = gt_ignore.tolist(), gt_crowd.tolist()
    out = match.tolist()
    for t, th in enumerate(thr.tolist()):
        taken = [False] * len(ignore)
        for d, row, top in zip(cand.tolist(), rows, reach):
            if top < th:
                continue
            best, m = th, -1
            for g, value in enumerate(row):
                if taken[g] and not crowd[g]:
                    continue
                if m > -1 and not ignore[m] and ignore[g]:
                    break
                if value < best:
                    continue
                best, m = value, g
            if m > -1:
                out[t][d] = m
                taken[m] = True
    return np.asarray(out, dtype=np.int64).reshape(match.shape)
