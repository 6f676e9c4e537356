"""Objects365 v2 box AP: the COCO protocol (as Detic registers `objects365_v2_val` as COCO)."""

from __future__ import annotations

from typing import Any

from detic_cli.evaluation.coco_eval import evaluate_coco


def evaluate_objects365(
    data: dict[str, Any], results: list[dict[str, Any]], *, drop_unknown_images: bool = False
) -> dict[str, float]:
    """COCO box metrics (percent) on the Objects365 validation annotations."""
    return evaluate_coco(data, results, iou_type="bbox", drop_unknown_images=drop_unknown_images)
