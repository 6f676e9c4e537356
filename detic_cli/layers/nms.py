"""Class-agnostic NMS followed by a top-k cut, computed only as far as the cut needs (exact).

CenterNet keeps the `top` best boxes after NMS over a few thousand candidates. torchvision's CPU `nms` runs the
greedy loop over every candidate in one thread (O(N^2) IoUs at a 0.9 threshold, where almost every box
survives). The greedy result of the first M boxes in score order depends on those M boxes only, so here the
boxes are visited in chunks of the score order and the walk stops once `top` boxes are kept and the next
candidate scores below the top-th kept one. IoUs use torchvision's float32 formula and comparison, so the kept
boxes are the same; their order is the same as long as the kept scores have no exact ties (with ties
torchvision's final non-stable sort orders them arbitrarily, so those inputs take torchvision's path).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms

from detic_cli.layers.fast_conv import fast_path_allowed

__all__ = ["nms_top", "nms_top_reference"]


def nms_top_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, top: int) -> torch.Tensor:
    """torchvision `batched_nms` over one class, then the kept boxes scoring >= the `top`-th best kept score.

    boxes: (N, 4) XYXY; scores: (N,). Returns int64 indices into boxes, in decreasing score order.
    """
    keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.int64), iou_threshold)
    if len(keep) > top:
        kept = scores[keep]
        thresh = torch.kthvalue(kept.cpu(), len(kept) - top + 1).values.item()
        keep = keep[kept >= thresh]
    return keep


def _over(kept: np.ndarray, kept_areas: np.ndarray, boxes: np.ndarray, areas: np.ndarray,
          iou_threshold: float) -> np.ndarray:
    """(K, M) bool: IoU(kept[k], boxes[m]) > iou_threshold, in torchvision's nms kernel arithmetic (float32
    IoU = inter / (area_k + area_m - inter), compared in double precision with the threshold). NumPy: one
    thread, no OpenMP barriers for these small arrays."""
    xx1 = np.maximum(kept[:, None, 0], boxes[None, :, 0])
    yy1 = np.maximum(kept[:, None, 1], boxes[None, :, 1])
    xx2 = np.minimum(kept[:, None, 2], boxes[None, :, 2])
    yy2 = np.minimum(kept[:, None, 3], boxes[None, :, 3])
    inter = np.maximum(xx2 - xx1, np.float32(0)) * np.maximum(yy2 - yy1, np.float32(0))
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: 0 / 0 = nan, not suppressed
        iou = inter / (kept_areas[:, None] + areas[None, :] - inter)
    return iou.astype(np.float64) > iou_threshold


def _greedy_chunk(boxes: np.ndarray, areas: np.ndarray, alive: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Positions (in chunk order = score order) the greedy NMS keeps among the `alive` boxes of one chunk."""
    over = np.triu(_over(boxes, areas, boxes, areas, iou_threshold), k=1)
    over &= alive[:, None] & alive[None, :]
    suppressed = ~alive
    for i, j in zip(*np.nonzero(over)):  # row-major: every (i', i) with i' < i is settled before row i
        if not suppressed[i]:
            suppressed[j] = True
    return np.flatnonzero(~suppressed)


def nms_top(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, top: int,
            chunk: int = 512) -> torch.Tensor:
    """`nms_top_reference(boxes, scores, iou_threshold, top)`, visiting only the candidates the cut needs.

    boxes: (N, 4) XYXY float32 on the CPU (elsewhere, with gradient or non-finite values: the reference);
    scores: (N,). Returns int64 indices in decreasing score order, equal to the reference's.
    """
    n = len(scores)
    if (n == 0 or top <= 0 or not fast_path_allowed(boxes) or scores.dtype != torch.float32
            or not bool(torch.isfinite(boxes).all())):
        return nms_top_reference(boxes, scores, iou_threshold, top)
    order = scores.sort(descending=True, stable=True)[1].numpy()  # the nms kernel's visiting order
    array = boxes.detach().numpy()
    areas = (array[:, 2] - array[:, 0]) * (array[:, 3] - array[:, 1])
    values = scores.detach().numpy()
    keep = order[:0]
    chunk = max(chunk, top + top // 2)
    for start in range(0, n, chunk):
        index = order[start : start + chunk]
        alive = np.ones(len(index), dtype=bool)
        if len(keep):
            alive = ~_over(array[keep], areas[keep], array[index], areas[index], iou_threshold).any(0)
        keep = np.concatenate((keep, index[_greedy_chunk(array[index], areas[index], alive, iou_threshold)]))
        if len(keep) >= top and (start + chunk >= n or values[order[start + chunk]] < values[keep[top - 1]]):
            break
    if len(keep) > top:
        keep = keep[values[keep] >= values[keep[top - 1]]]
    kept = values[keep]
    if len(kept) > 1 and bool((kept[1:] == kept[:-1]).any()):
        return nms_top_reference(boxes, scores, iou_threshold, top)
    return torch.from_numpy(keep)
