"""How far an exported model's detections are from PyTorch's on the same input."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torchvision.ops import box_iou

from detic_cli.structures import Instances


@dataclass(frozen=True)
class Agreement:
    """Detections paired by class and best IoU (>= 0.5), greedily in PyTorch's score order.

    `max_box_diff` (px) and `max_score_diff` are over the pairs; `unmatched` counts detections of either
    side without a partner that score more than `margin` above the threshold (a detection that close to
    the threshold may legitimately fall on either side of it)."""

    reference: int
    exported: int
    paired: int
    unmatched: int
    max_box_diff: float
    max_score_diff: float
    max_mask_diff: float | None

    def as_dict(self) -> dict:
        return asdict(self)

    def within(self, box_tol: float, score_tol: float) -> bool:
        return self.unmatched == 0 and self.max_box_diff <= box_tol and self.max_score_diff <= score_tol


def _pairs(ref: Instances, out: Instances) -> list[tuple[int, int]]:
    iou = box_iou(ref.pred_boxes.tensor, out.pred_boxes.tensor).numpy() if len(ref) and len(out) else None
    used: set[int] = set()
    pairs = []
    for i in np.argsort(-ref.scores.numpy(), kind="stable"):
        if iou is None:
            break
        same = (out.pred_classes.numpy() == int(ref.pred_classes[i]))
        candidates = [j for j in np.flatnonzero(same & (iou[i] >= 0.5)) if j not in used]
        if candidates:
            j = max(candidates, key=lambda c: iou[i, c])
            used.add(j)
            pairs.append((int(i), int(j)))
    return pairs


def agreement(ref: Instances, out: Instances, *, threshold: float, margin: float = 1e-3) -> Agreement:
    """Compare PyTorch's `ref` and the exported model's `out` (same frame: `pred_boxes`, `scores`,
    `pred_classes`, optional `pred_masks` probabilities of the same shape)."""
    pairs = _pairs(ref, out)
    left = set(range(len(ref))) - {i for i, _ in pairs}
    right = set(range(len(out))) - {j for _, j in pairs}
    unmatched = sum(float(ref.scores[i]) > threshold + margin for i in left)
    unmatched += sum(float(out.scores[j]) > threshold + margin for j in right)
    ri = [i for i, _ in pairs]
    oj = [j for _, j in pairs]
    box = (ref.pred_boxes.tensor[ri] - out.pred_boxes.tensor[oj]).abs().max().item() if pairs else 0.0
    score = (ref.scores[ri] - out.scores[oj]).abs().max().item() if pairs else 0.0
    mask = None
    if pairs and ref.has("pred_masks") and out.has("pred_masks"):
        mask = (ref.pred_masks[ri].float() - out.pred_masks[oj].float()).abs().max().item()
    return Agreement(reference=len(ref), exported=len(out), paired=len(pairs), unmatched=int(unmatched),
                     max_box_diff=float(box), max_score_diff=float(score), max_mask_diff=mask)
