"""Predictions -> COCO results, and the evaluate_results entry point."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from detic_cli.errors import DeticError
from detic_cli.evaluation import dataset_category_ids, evaluate_results, to_coco_results
from detic_cli.evaluation.synthetic import synthetic_ground_truth


def test_boxes_categories_and_order():
    out = to_coco_results(
        7,
        boxes_xyxy=np.asarray([[10, 20, 30, 60], [0, 0, 5, 5]], dtype=np.float32),
        scores=[0.2, 0.9],
        class_indices=[2, 0],
        category_ids=[1, 5, 9],
    )
    assert [r["score"] for r in out] == pytest.approx([0.9, 0.2])
    assert out[1] == {"image_id": 7, "category_id": 9, "bbox": [10.0, 20.0, 20.0, 40.0], "score": pytest.approx(0.2)}
    assert out[0]["category_id"] == 1 and out[0]["bbox"] == [0.0, 0.0, 5.0, 5.0]


def test_masks_become_text_rle():
    mask = np.zeros((8, 6), dtype=bool)
    mask[2:5, 1:4] = True
    out = to_coco_results(1, boxes_xyxy=[[1, 2, 4, 5]], scores=[0.5], class_indices=[0], category_ids=[3],
                          masks=[mask])  # fmt: skip
    rle = out[0]["segmentation"]
    assert isinstance(rle["counts"], str) and rle["size"] == [8, 6]
    assert mask_utils.area(rle) == 9
    assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)


def test_bad_predictions_are_reported():
    with pytest.raises(DeticError, match="vocabulary"):
        to_coco_results(1, boxes_xyxy=[[0, 0, 1, 1]], scores=[0.5], class_indices=[3], category_ids=[1, 2])
    with pytest.raises(DeticError, match="1 boxes, 2 scores"):
        to_coco_results(1, boxes_xyxy=[[0, 0, 1, 1]], scores=[0.5, 0.4], class_indices=[0], category_ids=[1])


def test_round_trip_perfect_detections_score_100():
    gt = synthetic_ground_truth(num_images=6, num_categories=4, seed=3, lvis=True)
    for ann in gt["annotations"]:
        ann["id"] += 1  # both reference tools read a match to annotation id 0 as no match
    cat_ids = dataset_category_ids(gt)
    results = []
    for img in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == img["id"] and a["area"] > 0]
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        classes = [cat_ids.index(a["category_id"]) for a in anns]
        results += to_coco_results(img["id"], boxes_xyxy=np.asarray(boxes, dtype=np.float64), scores=[1.0] * len(anns),
                                   class_indices=classes, category_ids=cat_ids)  # fmt: skip
    metrics = evaluate_results("lvis", gt, results, "bbox")
    assert metrics["AP"] == pytest.approx(100.0)
    assert metrics["AR@300"] == pytest.approx(100.0)


def test_entry_point_refuses_bad_requests(tmp_path):
    gt = synthetic_ground_truth(num_images=2, num_categories=2, seed=0, lvis=False)
    with pytest.raises(DeticError, match="unknown evaluation kind"):
        evaluate_results("voc", gt, [], "bbox")
    with pytest.raises(DeticError, match="boxes only"):
        evaluate_results("objects365", gt, [], "segm")
    with pytest.raises(DeticError, match="not found"):
        evaluate_results("coco", tmp_path / "missing.json", [], "bbox")
