"""lvis-norare and lvis-coco on small synthetic LVIS v1 / COCO 2017 files."""

from __future__ import annotations

import numpy as np
import pytest

from detic_cli.data.prepare import lvis_coco, lvis_norare
from detic_cli.errors import DeticError
from tests.data.prepare.conftest import LVIS, load, write_json


def _poly(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def lvis_train(lvis_cats) -> dict:
    """4 images (one without annotations), 2 rare classes among 5, polygon masks."""
    wanted = ("person", "dog", "cat", "sausage", "applesauce", "bat_(animal)")
    cats = [c for c in lvis_cats if c["name"] in wanted]
    cats[[c["name"] for c in cats].index("bat_(animal)")]["frequency"] = "r"
    images = [{"id": i, "coco_url": f"http://images.cocodataset.org/train2017/{i:012d}.jpg", "height": 100,
               "width": 120, "neg_category_ids": [LVIS["cat"]] if i == 2 else [], "not_exhaustive_category_ids": []}
              for i in (1, 2, 3, 4)]
    boxes = [(1, "person", (10, 10, 40, 60)), (1, "applesauce", (60, 10, 20, 20)), (1, "dog", (70, 50, 30, 30)),
             (2, "dog", (5, 5, 50, 50)), (2, "bat_(animal)", (60, 60, 10, 10)), (2, "applesauce", (1, 1, 5, 5)),
             (3, "person", (20, 20, 30, 30))]
    anns = [{"id": 100 + k, "image_id": img, "category_id": LVIS[name], "bbox": list(box), "area": box[2] * box[3],
             "segmentation": _poly(*box)} for k, (img, name, box) in enumerate(boxes)]
    return {"info": {"year": 2020}, "images": images, "annotations": anns, "categories": cats, "licenses": []}


def test_norare_drops_rare_annotations_and_counts_images(root, mirror, progress, lvis_cats):
    train = lvis_train(lvis_cats)
    write_json(root / "lvis" / "lvis_v1_train.json", train)
    paths = lvis_norare.prepare(root, force=False, progress=progress)
    assert paths == [root / "lvis/lvis_v1_train_norare.json", root / "metadata/lvis_v1_train_cat_info.json"]
    norare, info = load(paths[0]), load(paths[1])
    rare = {c["id"] for c in train["categories"] if c["frequency"] == "r"}
    assert rare == {LVIS["applesauce"], LVIS["bat_(animal)"]}
    assert not [a for a in norare["annotations"] if a["category_id"] in rare]
    assert [a["id"] for a in norare["annotations"]] == [100, 102, 103, 106]
    assert norare["images"] == train["images"] and norare["categories"] == train["categories"]
    assert norare["annotations"][0]["segmentation"] == train["annotations"][0]["segmentation"]
    counts = {c["name"]: (c["image_count"], c["instance_count"]) for c in info}
    # counted on the full train set (rare classes included), every category listed once, in order
    assert counts == {"person": (2, 2), "dog": (2, 2), "applesauce": (2, 2), "bat_(animal)": (1, 1), "cat": (0, 0),
                      "sausage": (0, 0)}
    assert [c["id"] for c in info] == [c["id"] for c in train["categories"]]
    assert info[0]["synonyms"] == train["categories"][0]["synonyms"]


def test_norare_refuses_a_file_without_frequencies(root, mirror, progress, lvis_cats):
    train = lvis_train(lvis_cats)
    del train["categories"][0]["frequency"]
    write_json(root / "lvis" / "lvis_v1_train.json", train)
    with pytest.raises(DeticError, match="frequency"):
        lvis_norare.prepare(root, force=False, progress=progress)
    assert not (root / "lvis/lvis_v1_train_norare.json").exists()


def coco_train() -> dict:
    cats = [{"id": k, "name": n, "supercategory": "x"} for k, n in
            ((1, "person"), (17, "cat"), (18, "dog"), (58, "hot dog"), (90, "toothbrush"))]
    images = [{"id": 500 + i, "file_name": f"{i:012d}.jpg", "height": 100, "width": 120} for i in (1, 2, 3, 4, 9)]
    rows = [
        (1, 1, (11, 11, 40, 60)),  # duplicate of the LVIS person: dropped
        (1, 18, (12, 12, 38, 58)),  # overlaps the LVIS person, other class: kept
        (1, 58, (90, 80, 10, 10)),  # hot dog -> LVIS sausage, no overlap: kept
        (1, 90, (0, 0, 5, 5)),  # toothbrush: no synset in the mapping, dropped
        (2, 17, (30, 30, 10, 10)),  # cat is in image 2's neg_category_ids: dropped
        (2, 18, (6, 6, 50, 50)),  # duplicate of the LVIS dog (IoU >= 0.7): dropped
        (4, 1, (1, 1, 10, 10)),  # image 4 has no LVIS annotation: dropped
        (9, 1, (1, 1, 10, 10)),  # image 9 is not in LVIS: dropped
    ]
    anns = [{"id": 9000 + k, "image_id": 500 + img, "category_id": cat, "bbox": list(box), "area": box[2] * box[3],
             "iscrowd": 0, "segmentation": _poly(*box)} for k, (img, cat, box) in enumerate(rows)]
    return {"images": images, "annotations": anns, "categories": cats}


def test_lvis_coco_merges_mapped_masks_without_duplicates(root, mirror, progress, lvis_cats):
    train = lvis_train(lvis_cats)
    write_json(root / "lvis" / "lvis_v1_train.json", train)
    write_json(root / "coco" / "annotations" / "instances_train2017.json", coco_train())
    [path] = lvis_coco.prepare(root, force=False, progress=progress)
    assert path == root / "lvis" / "lvis_v1_train+coco_mask.json"
    merged = load(path)
    assert merged["images"] == train["images"] and merged["categories"] == train["categories"]
    anns = merged["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    lvis_part = [a for a in anns if a["bbox"] in [b["bbox"] for b in train["annotations"]]]
    assert len(lvis_part) == len(train["annotations"])
    added = [a for a in anns if a not in lvis_part]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in added] == [
        (1, LVIS["dog"], [12, 12, 38, 58]), (1, LVIS["sausage"], [90, 80, 10, 10])]
    assert all(a["segmentation"] == _poly(*a["bbox"]) for a in anns)
    cat_ids = {c["id"] for c in merged["categories"]}
    image_ids = {img["id"] for img in merged["images"]}
    assert all(a["category_id"] in cat_ids and a["image_id"] in image_ids for a in anns)


def test_pairwise_iou_matches_the_definition():
    a = np.array([[0, 0, 10, 10], [5, 5, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [20, 20, 2, 2], [0, 0, 5, 5]], dtype=float)
    iou = lvis_coco.pairwise_iou(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1, 0, 0.25], [25 / 175, 0, 0]], rtol=1e-6)
    assert lvis_coco.pairwise_iou(np.zeros((0, 4)), b).shape == (0, 3)
