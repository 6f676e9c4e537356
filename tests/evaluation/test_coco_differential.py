"""Our COCO-protocol evaluators (COCO, Objects365, OV-COCO) against pycocotools itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from detic_cli.errors import DeticError
from detic_cli.evaluation import evaluate_results
from detic_cli.evaluation.ovcoco_eval import SEEN_CLASSES, UNSEEN_CLASSES
from detic_cli.evaluation.synthetic import synthetic_ground_truth, synthetic_results


def _set(seed: int, masks: bool, num_categories: int = 15):
    gt = synthetic_ground_truth(num_images=40, num_categories=num_categories, seed=seed, lvis=False, masks=masks)
    return gt, synthetic_results(gt, seed=seed, masks=masks)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_pycocotools(seed, iou_type, cocoeval, same):
    gt, results = _set(seed, iou_type == "segm")
    assert any(a["iscrowd"] for a in gt["annotations"]) and gt["annotations"][0]["id"] == 0
    ours = evaluate_results("coco", gt, copy.deepcopy(results), iou_type)
    ref, _ = cocoeval(gt, results, iou_type)
    same(ours, ref)
    assert ours["AP"] > 1 and ours["AR@100"] >= ours["AR@10"] >= ours["AR@1"]


def test_objects365_is_coco_box_ap(cocoeval, same):
    gt, results = _set(5, False)
    ours = evaluate_results("objects365", gt, results, "bbox")
    same(ours, cocoeval(gt, results, "bbox")[0])
    assert ours == evaluate_results("coco", gt, results, "bbox") and ours["AP"] > 1


def test_empty_and_unknown(cocoeval, same):
    gt, results = _set(6, False)
    # pycocotools cannot load an empty list; a detection of a category outside the set is ignored.
    ref, _ = cocoeval(gt, [{"image_id": gt["images"][0]["id"], "category_id": 9999, "bbox": [0, 0, 4, 4],
                            "score": 0.5}], "bbox")
    ours = evaluate_results("coco", gt, [], "bbox")
    same(ours, ref)
    assert ours["AP"] == 0.0
    stray = dict(results[0], image_id=-3)
    with pytest.raises(AssertionError):
        cocoeval(gt, results + [stray], "bbox")
    with pytest.raises(DeticError, match="not in the ground truth"):
        evaluate_results("coco", gt, results + [stray], "bbox")
    same(evaluate_results("coco", gt, results + [stray], "bbox", drop_unknown_images=True),
         cocoeval(gt, results, "bbox")[0])


def test_ovcoco_seen_unseen_as_detic(cocoeval, same):
    """Seen/unseen AP50: mean over names of pycocotools' per-class AP50 (Detic's CustomCOCOEvaluator)."""
    gt, results = _set(7, False, num_categories=10)
    names = list(SEEN_CLASSES[:6]) + list(UNSEEN_CLASSES[:4])
    for cat, name in zip(gt["categories"], names):
        cat["name"] = name
    ours = evaluate_results("ovcoco", gt, results, "bbox")
    ref, ev = cocoeval(gt, results, "bbox")
    same(ours, ref)
    precision = ev.eval["precision"][0, :, :, 0, -1]
    ap50 = [float(np.mean(p[p > -1])) * 100 for p in precision.T]
    id_to_name = {c["id"]: c["name"] for c in gt["categories"]}
    by_name = dict(zip((id_to_name[i] for i in ev.params.catIds), ap50))
    assert ours["AP50-seen"] == pytest.approx(np.mean([by_name[n] for n in names[:6]]), abs=1e-9)
    assert ours["AP50-unseen"] == pytest.approx(np.mean([by_name[n] for n in names[6:]]), abs=1e-9)
    assert ours["AP50-seen"] != pytest.approx(ours["AP50-unseen"])
