"""Our LVIS evaluator against lvis-api itself, on synthetic federated ground truth."""

from __future__ import annotations

import copy
import math
from collections import Counter, defaultdict

import pytest

from detic_cli.errors import DeticError
from detic_cli.evaluation import evaluate_results, lvis_eval
from detic_cli.evaluation.synthetic import synthetic_ground_truth, synthetic_results


def _set(seed: int, masks: bool):
    gt = synthetic_ground_truth(num_images=40, num_categories=15, seed=seed, lvis=True, masks=masks)
    return gt, synthetic_results(gt, seed=seed, masks=masks)


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_lvis_api(seed, iou_type, lvis_api, same):
    gt, results = _set(seed, iou_type == "segm")
    per_image = Counter(r["image_id"] for r in results)
    assert max(per_image.values()) > 300  # the per-image cap is exercised
    assert len(per_image) < len(gt["images"])  # and images without detections
    assert any(img["not_exhaustive_category_ids"] for img in gt["images"])
    ours = evaluate_results("lvis", gt, copy.deepcopy(results), iou_type)
    ref = lvis_api(gt, results, iou_type)
    same(ours, ref)
    assert 1 < ours["AP"] < 95 and ours["AP50"] > ours["AP75"]  # a set with real signal


def test_empty_results_score_zero(lvis_api, same):
    gt, _ = _set(2, False)
    # lvis-api cannot load an empty list; one detection the federated rules drop is the same thing.
    img = gt["images"][0]
    unlisted = next(c["id"] for c in gt["categories"] if c["id"] not in img["neg_category_ids"]
                    and all(a["category_id"] != c["id"] or a["image_id"] != img["id"] for a in gt["annotations"]))
    dropped = [{"image_id": img["id"], "category_id": unlisted, "bbox": [1.0, 1.0, 5.0, 5.0], "score": 0.9}]
    ref = lvis_api(gt, dropped, "bbox")
    ours = evaluate_results("lvis", gt, [], "bbox")
    same(ours, ref)
    assert ours["AP"] == 0.0


def test_unknown_image_ids(lvis_api, same):
    gt, results = _set(3, False)
    stray = dict(results[0], image_id=999_999)
    with pytest.raises(AssertionError):  # lvis-api refuses such results
        lvis_api(gt, results + [stray], "bbox")
    with pytest.raises(DeticError, match="999999"):
        evaluate_results("lvis", gt, results + [stray], "bbox")
    ours = evaluate_results("lvis", gt, results + [stray], "bbox", drop_unknown_images=True)
    same(ours, lvis_api(gt, results, "bbox"))


def test_fixed_ap_equals_lvis_api_protocol(monkeypatch, lvis_api, same):
    """Dave et al.'s fixed AP: top-k per category over the set, no per-image cap (k=25 here)."""
    monkeypatch.setattr(lvis_eval, "FIXED_AP_DETS_PER_CATEGORY", 25)
    gt, results = _set(4, False)
    by_cat = defaultdict(list)
    for r in results:
        by_cat[r["category_id"]].append(r)
    capped = [r for anns in by_cat.values() for r in sorted(anns, key=lambda a: a["score"], reverse=True)[:25]]
    ref = lvis_api(gt, capped, "bbox", max_dets=-1)
    ours = evaluate_results("lvis", gt, copy.deepcopy(results), "bbox", fixed_ap=True)
    same(ours, ref)
    assert not math.isclose(ours["AP"], evaluate_results("lvis", gt, results, "bbox")["AP"])
