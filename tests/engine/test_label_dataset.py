"""The labelled dataset: hash split, COCO (pycocotools) and YOLO (supervision) files equal to the shards."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from detic_cli.engine.label_dataset import DatasetLayout, output_names, parse_split, split_of, write_dataset
from detic_cli.engine.label_store import result_from_record, shard_record
from detic_cli.engine.result import Result
from detic_cli.errors import DeticError

CLASSES = ("bottle", "cap")


def _record(tmp_path, name: str, boxes, classes, masks: bool = True) -> dict:
    """A shard record of a 48x64 picture `name` (written under tmp_path/src) with box-shaped masks."""
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(src), np.full((48, 64, 3), 100, np.uint8))
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    mask = np.zeros((len(boxes), 48, 64), bool)
    for m, (x1, y1, x2, y2) in zip(mask, boxes.astype(int)):
        m[y1:y2, x1:x2] = True
    result = Result(boxes=boxes, scores=np.linspace(0.9, 0.6, len(boxes)).astype(np.float32),
                    class_ids=np.asarray(classes, np.int64), class_names=[CLASSES[c] for c in classes],
                    masks=mask if masks else None, image_size=(48, 64), source=str(src), frame_index=None,
                    vocabulary=list(CLASSES))
    return shard_record(src.resolve().as_posix(), src, result)


def test_split_is_a_hash_of_the_path_alone():
    splits = parse_split("train=8,val=2")
    assert splits == (("train", 0.8), ("val", 0.2))
    keys = [f"/data/img_{i}.jpg" for i in range(400)]
    before = {k: split_of(k, splits, seed=3) for k in keys}
    after = {k: split_of(k, splits, seed=3) for k in keys + [f"/data/new_{i}.jpg" for i in range(100)]}
    assert all(after[k] == v for k, v in before.items())  # adding pictures never moves old ones
    assert 0.7 < sum(v == "train" for v in before.values()) / 400 < 0.9
    assert before != {k: split_of(k, splits, seed=4) for k in keys}
    for bad in ("train", "train=0.5,train=0.5", "a=-1", "a=0", "a/b=1"):
        with pytest.raises(DeticError, match="--split"):
            parse_split(bad)


def test_coco_and_yolo_boxes_and_classes_equal_the_detections(tmp_path):
    import supervision as sv
    from pycocotools.coco import COCO

    records = [_record(tmp_path, "a.jpg", [[2, 3, 30, 40], [10, 10, 60, 20]], [0, 1]),
               _record(tmp_path, "b.jpg", [[5, 5, 25, 25]], [1]),
               _record(tmp_path, "c.jpg", [], [])]
    out = tmp_path / "ds"
    summary = write_dataset(DatasetLayout(out, CLASSES, ("coco", "yolo"), masks="none"), records)
    assert summary.images == 3 and summary.per_class == {"bottle": 1, "cap": 2} and summary.empty == 1
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    yolo = sv.DetectionDataset.from_yolo(str(out / "images" / "train"), str(out / "labels" / "train"),
                                         str(out / "data.yaml"))
    assert yolo.classes == list(CLASSES)
    for rec in records:
        want = result_from_record(rec, list(CLASSES))
        img = next(i for i in coco.dataset["images"] if i["file_name"] == os.path.basename(rec["file"]))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        xywh = np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        assert np.allclose(xywh[:, :2], want.boxes[:, :2]) and np.allclose(xywh[:, :2] + xywh[:, 2:], want.boxes[:, 2:])
        assert [a["category_id"] - 1 for a in anns] == want.class_ids.tolist()
        assert np.allclose([a["score"] for a in anns], want.scores) and all("segmentation" not in a for a in anns)
        path = next(p for p in yolo.image_paths if os.path.basename(p) == os.path.basename(rec["file"]))
        got = yolo.annotations[path]
        assert np.allclose(got.xyxy, want.boxes, atol=1e-3) and got.class_id.tolist() == want.class_ids.tolist()
    assert os.path.samefile(out / "images" / "train" / "a.jpg", tmp_path / "src" / "a.jpg")  # a hard link


def test_masks_as_polygons_or_rle_and_empty_pictures_dropped(tmp_path):
    import supervision as sv
    from pycocotools.coco import COCO

    records = [_record(tmp_path, "a.jpg", [[2, 3, 30, 40]], [0]), _record(tmp_path, "c.jpg", [], [])]
    out = tmp_path / "ds"
    layout = DatasetLayout(out, CLASSES, ("coco", "yolo"), masks="polygon", drop_empty=True, copy_images=True)
    summary = write_dataset(layout, records)
    assert summary.images == 1 and summary.dropped == 1 and not (out / "images" / "train" / "c.jpg").exists()
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    ann = coco.dataset["annotations"][0]
    assert isinstance(ann["segmentation"], list) and ann["area"] == 28 * 37
    assert coco.annToMask(ann).sum() == pytest.approx(28 * 37, rel=0.1)
    assert not os.path.samefile(out / "images" / "train" / "a.jpg", tmp_path / "src" / "a.jpg")  # a copy
    yolo = sv.DetectionDataset.from_yolo(str(out / "images" / "train"), str(out / "labels" / "train"),
                                         str(out / "data.yaml"), force_masks=True)
    got = next(iter(yolo.annotations.values()))
    assert got.class_id.tolist() == [0] and np.allclose(got.xyxy, [[2, 3, 29, 39]], atol=1.5)
    write_dataset(DatasetLayout(out, CLASSES, ("coco",), masks="rle", splits=(("val", 1.0),)), records)
    rle = json.loads((out / "annotations" / "instances_val.json").read_text())["annotations"][0]["segmentation"]
    assert rle["size"] == [48, 64] and isinstance(rle["counts"], str)
    # what the earlier write made and this one did not is gone
    assert not (out / "annotations" / "instances_train.json").exists() and not (out / "data.yaml").exists()
    assert (out / "images" / "val" / "c.jpg").is_file() and not (out / "images" / "train" / "a.jpg").exists()


def test_names_shared_by_several_inputs_get_a_digest(tmp_path):
    records = [{"key": "/x/a.jpg", "file": "/x/a.jpg", "file_name": "/x/a.jpg"},
               {"key": "/y/a.jpg", "file": "/y/a.jpg", "file_name": "/y/a.jpg"},
               {"key": "/v.mp4#3", "file": "/w/123.png", "file_name": "/v.mp4", "frame_index": 3}]
    names = output_names(records)
    assert names["/v.mp4#3"] == "v_000003.png"
    assert names["/x/a.jpg"] != names["/y/a.jpg"] and names["/x/a.jpg"].startswith("a_")
