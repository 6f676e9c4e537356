"""OpenImages challenge AP50 (Google matching, group-of boxes, hierarchy expansion), worked by hand."""

from __future__ import annotations

import pytest

from detic_cli.errors import DeticError
from detic_cli.evaluation import evaluate_results

HIERARCHY = {"LabelName": "/m/0bl9f", "Subcategory": [
    {"LabelName": "/m/0jbk", "Subcategory": [{"LabelName": "/m/0bt9lr"}, {"LabelName": "/m/01yrx"}]},
]}  # fmt: skip


def _ann(i, img, cat, box, crowd=0):
    return {"id": i, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": crowd}


def _gt():
    cats = [{"id": 1, "name": "Animal", "freebase_id": "/m/0jbk"}, {"id": 2, "name": "Dog", "freebase_id": "/m/0bt9lr"},
            {"id": 3, "name": "Cat", "freebase_id": "/m/01yrx"}]  # fmt: skip
    images = [
        {"id": 1, "height": 100, "width": 100, "pos_category_ids": [1, 2], "neg_category_ids": [3]},
        {"id": 2, "height": 100, "width": 100, "pos_category_ids": [1, 3], "neg_category_ids": [2]},
    ]
    group, box_a, box_b = [50, 50, 40, 40], [0, 0, 10, 10], [0, 0, 20, 20]
    anns = [_ann(1, 1, 2, box_a), _ann(2, 1, 1, box_a), _ann(3, 2, 3, group, 1), _ann(4, 2, 1, group, 1),
            _ann(5, 2, 3, box_b), _ann(6, 2, 1, box_b), _ann(7, 2, 3, [5, 5, 0, 3])]  # zero area: skipped
    return {"images": images, "annotations": anns, "categories": cats}


def _det(img, cat, box, score):
    return {"image_id": img, "category_id": cat, "bbox": box, "score": score}


RESULTS = [
    _det(2, 2, [0, 0, 20, 20], 0.95),  # dog where dog is verified absent: false positive
    _det(1, 2, [0, 0, 10, 10], 0.9),  # true positive
    _det(1, 2, [1, 0, 10, 10], 0.8),  # its box is taken: false positive
    _det(2, 3, [55, 55, 10, 10], 0.7),  # inside the group-of box
    _det(2, 3, [60, 60, 10, 10], 0.6),  # same group: merged into one true positive at 0.7
    _det(2, 3, [0, 0, 20, 20], 0.5),  # true positive
    _det(1, 3, [0, 0, 10, 10], 0.4),  # cat verified absent: false positive
    _det(1, 1, [0, 0, 10, 10], 0.3),  # animal on image 1 is fine, but image 2 ...
]


def test_ap50_without_expansion():
    # Dog: FP, TP, FP over 1 box -> 0.5; Cat: 0.7 TP (group), 0.5 TP, 0.4 FP over 2 -> 1.0;
    # Animal: one TP of three boxes at precision 1 -> 1/3.
    out = evaluate_results("oid", _gt(), RESULTS, "bbox")
    assert out["AP50"] == pytest.approx((0.5 + 1.0 + 1 / 3) / 3 * 100)
    assert "AP50_expand" not in out


def test_ap50_with_hierarchy_expansion():
    # Animal gets copies of every dog/cat detection: .95 TP, .9 TP, .8 FP, .7 TP (group), .5 FP,
    # .4 FP, .3 FP over 3 boxes -> 1/3 + 1/3 + 1/3 * 3/4.
    out = evaluate_results("oid", _gt(), RESULTS, "bbox", oid_hierarchy=HIERARCHY)
    animal = 1 / 3 + 1 / 3 + 0.75 / 3
    assert out["AP50_expand"] == pytest.approx((0.5 + 1.0 + animal) / 3 * 100)
    assert out["AP50"] == pytest.approx((0.5 + 1.0 + 1 / 3) / 3 * 100)


def test_hierarchy_label_outside_categories_is_reported():
    bad = {"LabelName": "/m/0bl9f", "Subcategory": [{"LabelName": "/m/unknown"}]}
    with pytest.raises(DeticError, match="/m/unknown"):
        evaluate_results("oid", _gt(), RESULTS, "bbox", oid_hierarchy=bad)
