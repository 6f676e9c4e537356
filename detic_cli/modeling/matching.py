"""IoU matching and balanced sampling shared by the RPN and the ROI heads (detectron2's Matcher and
subsample_labels)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["match_by_iou", "subsample_labels"]


def match_by_iou(iou: torch.Tensor, thresholds: Sequence[float], labels: Sequence[int],
                 allow_low_quality_matches: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """detectron2's Matcher on a (G, R) IoU matrix: (R,) best gt index and (R,) int8 label.

    An IoU in [thresholds[i-1], thresholds[i]) gets labels[i] (with -inf/+inf around the list).
    With `allow_low_quality_matches`, every anchor that ties a gt's best IoU gets label 1.
    No gt: index 0 and labels[0] everywhere.
    """
    if iou.numel() == 0:
        return (iou.new_zeros((iou.shape[1],), dtype=torch.int64),
                iou.new_full((iou.shape[1],), labels[0], dtype=torch.int8))
    matched_vals, matches = iou.max(dim=0)
    match_labels = matches.new_full(matches.shape, 1, dtype=torch.int8)
    bounds = [-float("inf"), *thresholds, float("inf")]
    for label, low, high in zip(labels, bounds[:-1], bounds[1:], strict=True):
        match_labels[(matched_vals >= low) & (matched_vals < high)] = label
    if allow_low_quality_matches:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        match_labels[(iou == best_per_gt).any(dim=0)] = 1
    return matches, match_labels


def subsample_labels(labels: torch.Tensor, num_samples: int, positive_fraction: float,
                     bg_label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positive and negative indices of a (R,) label vector (-1 = ignore), at most
    num_samples * positive_fraction positives, negatives filling up to num_samples."""
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    pos_idx = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
    neg_idx = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
    return pos_idx, neg_idx
