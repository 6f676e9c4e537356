"""Averaging accumulated precision/recall into the summary numbers both reference tools print."""

from __future__ import annotations

import math

import numpy as np

from detic_cli.evaluation.pairs import AREA_LABELS, IOU_THRESHOLDS


def mean_valid(values: np.ndarray) -> float:
    """Mean over entries > -1 (categories with ground truth); -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def select(
    array: np.ndarray,
    *,
    iou: float | None = None,
    area: str = "all",
    categories: list[int] | None = None,
) -> np.ndarray:
    """Slice a (T, [R,] K, A) array by IoU threshold, area label and category subset."""
    if iou is not None:
        array = array[np.where(iou == IOU_THRESHOLDS)[0]]
    array = array[..., AREA_LABELS.index(area)]
    if categories is not None:
        array = array[..., categories]
    return array


def percent(value: float) -> float:
    """Reference value in [0, 1] (or -1 for 'no ground truth') -> percent, NaN for -1."""
    return math.nan if value < 0 else value * 100.0
