"""coco-zeroshot, objects365-names and oid-val on small synthetic raw files."""

from __future__ import annotations

import csv

import pytest

from detic_cli.data.prepare import coco_zeroshot, objects365_names, oid_val
from detic_cli.errors import DeticError
from tests.data.prepare.conftest import (
    ANIMAL,
    CARNIVORE,
    CAT_OID,
    CATTLE,
    DOG,
    jpeg_bytes,
    load,
    oid_hierarchy,
    write_json,
)


def _coco(shared_dir, split: str, rows: list[tuple[int, int]]) -> dict:
    cats = [{**c, "supercategory": "s"} for c in load(shared_dir / "detic-metadata" / "coco_categories.json")]
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 50, "width": 60} for i in (1, 2, 3, 4)]
    anns = [{"id": k + 1, "image_id": img, "category_id": cat, "bbox": [1, 2, 10, 10], "area": 100, "iscrowd": 0}
            for k, (img, cat) in enumerate(rows)]
    return {"info": {"split": split}, "images": images, "annotations": anns, "categories": cats}


def test_coco_zeroshot_split_in_original_order(root, progress, shared_dir):
    # person(1) and bicycle(2) are base classes, cat(17) and dog(18) novel, hot dog(58) in neither
    train = _coco(shared_dir, "train", [(1, 1), (1, 17), (2, 18), (3, 2), (3, 2), (4, 58)])
    val = _coco(shared_dir, "val", [(1, 17), (2, 58), (3, 1)])
    write_json(root / "coco/annotations/instances_train2017.json", train)
    write_json(root / "coco/annotations/instances_val2017.json", val)
    train_path, val_path, info_path = coco_zeroshot.prepare(root, force=False, progress=progress)
    assert train_path == root / "coco/zero-shot/instances_train2017_seen_2_oriorder.json"
    seen, generalized, info = load(train_path), load(val_path), load(info_path)
    assert len(coco_zeroshot.SEEN_IDS) == 48 and len(coco_zeroshot.UNSEEN_IDS) == 17
    assert seen["categories"] == val["categories"] == generalized["categories"]  # all 80, COCO order
    assert [(a["image_id"], a["category_id"]) for a in seen["annotations"]] == [(1, 1), (3, 2), (3, 2)]
    assert [im["id"] for im in seen["images"]] == [1, 3]
    assert [(a["image_id"], a["category_id"]) for a in generalized["annotations"]] == [(1, 17), (3, 1)]
    assert [im["id"] for im in generalized["images"]] == [1, 3] and generalized["info"] == {"split": "val"}
    counts = {c["id"]: (c["image_count"], c["instance_count"]) for c in info}
    assert len(info) == 80 and counts[1] == (1, 1) and counts[2] == (1, 2) and counts[17] == (0, 0)


def _o365(shared_dir, tweak: dict[int, str] | None = None) -> dict:
    with open(shared_dir / "detic-metadata" / "Objects365_names_fix.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    names = {int(r[0]): r[1] for r in rows}
    names.update(tweak or {})
    return {"images": [{"id": 1, "file_name": "images/v1/patch0/a.jpg", "height": 5, "width": 5}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 38, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}],
            "categories": [{"id": i, "name": n} for i, n in sorted(names.items())]}


def test_objects365_names_fixed(root, mirror, progress, shared_dir):
    raw = _o365(shared_dir, {365: "Table Tennis "})  # surrounding spaces do not count as a mismatch
    write_json(root / "objects365/annotations/zhiyuan_objv2_val.json", raw)
    [path] = objects365_names.prepare(root, force=False, progress=progress)
    assert path == root / "objects365/annotations/zhiyuan_objv2_val_fixname.json"
    fixed = load(path)
    names = {c["id"]: c["name"] for c in fixed["categories"]}
    assert (names[38], names[53], names[1], names[365]) == ("Monitor/TV", "Basket", "Person", "Table Tennis ")
    assert sum(a["name"] != b["name"] for a, b in zip(raw["categories"], fixed["categories"])) == 13
    assert fixed["images"] == raw["images"] and fixed["annotations"] == raw["annotations"]


def test_objects365_refuses_other_names(root, mirror, progress, shared_dir):
    write_json(root / "objects365/annotations/zhiyuan_objv2_val.json", _o365(shared_dir, {3: "Sofa"}))
    with pytest.raises(DeticError, match="category 3 is 'Sofa', expected 'Chair'"):
        objects365_names.prepare(root, force=False, progress=progress)


def _raw_oid(root):
    ann = root / "oid/annotations"
    ann.mkdir(parents=True)
    (ann / "challenge-2019-validation-detection-bbox.csv").write_text(
        "ImageID,LabelName,XMin,XMax,YMin,YMax,IsGroupOf\n"
        f"0001aa,{DOG},0.1,0.5,0.2,0.6,0\n"
        f"0001aa,{CATTLE},0,1,0,1,1\n"
        f"00ffbb,{CAT_OID},0.5,0.75,0.25,0.5,0\n")
    (ann / "challenge-2019-validation-detection-human-imagelabels.csv").write_text(
        "ImageID,Source,LabelName,Confidence\n"
        f"0001aa,verification,{DOG},1\n0001aa,verification,{CARNIVORE},0\n00ffbb,verification,{CAT_OID},1\n"
        f"0002cc,verification,{ANIMAL},0\n")
    for key, (w, h) in (("0001aa", (200, 100)), ("00ffbb", (40, 80))):  # 0002cc was not downloaded
        path = root / "oid/images/validation" / key[0] / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(w, h))


def test_oid_val_expanded_along_the_hierarchy(root, mirror, progress):
    _raw_oid(root)
    [path] = oid_val.prepare(root, force=False, progress=progress)
    assert path == root / "oid/annotations/oid_challenge_2019_val_expanded.json"
    assert load(root / "oid/annotations/challenge-2019-label500-hierarchy.json") == oid_hierarchy()
    out = load(path)
    ids = {c["freebase_id"]: c["id"] for c in out["categories"]}
    assert len(out["categories"]) == 500 and out["categories"][6] == {"id": 7, "name": "Animal", "freebase_id": ANIMAL}
    animal, cattle, carnivore, dog, cat = (ids[x] for x in (ANIMAL, CATTLE, CARNIVORE, DOG, CAT_OID))
    assert [(im["id"], im["file_name"], im["height"], im["width"]) for im in out["images"]] == [
        (1, "0/0001aa.jpg", 100, 200), (2, "0/00ffbb.jpg", 80, 40)]
    first, second = out["images"]
    assert first["pos_category_ids"] == [dog, animal, carnivore]  # Dog sits under Animal and under Carnivore
    assert first["neg_category_ids"] == [carnivore, cat, dog]  # absent Carnivore: its descendants too (by id)
    assert second["pos_category_ids"] == [cat, animal, carnivore] and second["neg_category_ids"] == []
    boxes = [(a["image_id"], a["category_id"], a["bbox"], a["area"], a["iscrowd"]) for a in out["annotations"]]
    dog_box, cattle_box, cat_box = [20.0, 20.0, 80.0, 40.0], [0.0, 0.0, 200.0, 100.0], [20.0, 20.0, 10.0, 20.0]
    assert boxes == [(1, dog, dog_box, 3200.0, 0), (1, animal, dog_box, 3200.0, 0), (1, carnivore, dog_box, 3200.0, 0),
                     (1, cattle, cattle_box, 20000.0, 1), (1, animal, cattle_box, 20000.0, 1),
                     (2, cat, cat_box, 200.0, 0), (2, animal, cat_box, 200.0, 0), (2, carnivore, cat_box, 200.0, 0)]
    assert [a["id"] for a in out["annotations"]] == list(range(1, 9))
