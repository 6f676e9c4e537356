"""Training records: LVIS/COCO json reading (polygons, RLE, crowd, image labels), catalog and paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detic_cli.data.catalog import resolve_train_dataset, train_dataset_names
from detic_cli.data.datasets import drop_images_without_boxes, load_coco_json, load_dataset, load_lvis_json
from detic_cli.data.masks import polygons_to_mask, rle_to_mask
from detic_cli.data.paths import dataset_path
from detic_cli.data.synthetic import IMAGE_DIR, make_detection_dataset, make_image_label_dataset
from detic_cli.errors import DeticError


def _load(spec: str, masks: bool = True):
    return load_dataset(resolve_train_dataset(spec), with_masks=masks)


def test_lvis_detection_records(tmp_path):
    ann = make_detection_dataset(tmp_path, num_images=4, size=64, seed=0, style="lvis")
    data = json.loads(ann.read_text())
    loaded = _load(f"lvis:{ann}:{tmp_path / IMAGE_DIR}")
    assert loaded.class_names == ["circle", "square", "triangle", "diamond", "star"]
    id_to_index = {cid: i for i, cid in enumerate(loaded.category_ids)}
    assert [r["image_id"] for r in loaded.records] == [1, 2, 3, 4]
    for rec in loaded.records:
        anns = [a for a in data["annotations"] if a["image_id"] == rec["image_id"]]
        assert rec["boxes"].shape == (len(anns), 4) and rec["boxes"].dtype == np.float32
        np.testing.assert_allclose(rec["boxes"], [a["bbox"] for a in anns], rtol=1e-6)
        assert rec["classes"].tolist() == [id_to_index[a["category_id"]] for a in anns]
        assert rec["segmentations"] == [a["segmentation"] for a in anns]
        assert Path(rec["file_name"]).is_file() and "pos_category_ids" not in rec
    assert _load(f"lvis:{ann}:{tmp_path / IMAGE_DIR}", masks=False).records[0]["segmentations"] is None


def test_coco_records_rle_and_crowd(tmp_path):
    ann = make_detection_dataset(tmp_path, num_images=4, size=64, seed=1, style="coco", rle_every=2, crowd_every=2)
    loaded = _load(f"coco:{ann}:{tmp_path / IMAGE_DIR}")
    first = loaded.records[0]
    assert first["crowd"].tolist()[-1] and not first["crowd"][:-1].any()  # image 0 has a crowd region last
    crowd_mask = rle_to_mask(first["segmentations"][-1])  # uncompressed RLE
    assert crowd_mask.shape == (48, 64) and crowd_mask[:12, :16].all() and crowd_mask.sum() == 12 * 16
    rles = [s for r in loaded.records for s, c in zip(r["segmentations"], r["crowd"]) if isinstance(s, dict) and not c]
    assert rles, "rle_every=2 writes compressed RLE masks"
    for rec in loaded.records:
        for box, segm, crowd in zip(rec["boxes"], rec["segmentations"], rec["crowd"]):
            if isinstance(segm, dict) and not crowd:  # the RLE mask fills its box
                ys, xs = np.nonzero(rle_to_mask(segm))
                assert abs(xs.min() - box[0]) <= 1 and abs(ys.max() + 1 - (box[1] + box[3])) <= 1


def test_coco_reader_drops_invalid_polygons_and_keeps_order(tmp_path):
    data = {"images": [{"id": 9, "file_name": "b.jpg", "height": 10, "width": 10},
                       {"id": 2, "file_name": "a.jpg", "height": 10, "width": 10}],
            "categories": [{"id": 5, "name": "x"}, {"id": 2, "name": "y"}],
            "annotations": [{"id": 1, "image_id": 9, "category_id": 5, "bbox": [0, 0, 2, 2], "iscrowd": 0,
                             "segmentation": [[0, 0, 1, 1]]},
                            {"id": 2, "image_id": 9, "category_id": 5, "bbox": [1, 1, 3, 3], "iscrowd": 0,
                             "segmentation": [[1, 1, 4, 1, 4, 4], [0, 0]]}]}  # fmt: skip
    loaded = load_coco_json(data, tmp_path, with_masks=True)
    assert [r["image_id"] for r in loaded.records] == [2, 9] and loaded.class_names == ["y", "x"]
    rec = loaded.records[1]
    assert rec["classes"].tolist() == [1] and rec["segmentations"] == [[[1, 1, 4, 1, 4, 4]]]
    assert drop_images_without_boxes(loaded.records) == [rec]


def test_coco_reader_keeps_boxes_with_an_empty_segmentation(tmp_path):
    """Box-only COCO files often write "segmentation": []; detectron2 keeps those boxes (only a non-empty
    list without one valid polygon drops an annotation)."""
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
            "categories": [{"id": 3, "name": "x"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "iscrowd": 0,
                             "segmentation": []},
                            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [2, 2, 3, 3], "iscrowd": 0}]}
    rec = load_coco_json(data, tmp_path, with_masks=False).records[0]
    assert rec["boxes"].tolist() == [[1, 1, 4, 4], [2, 2, 3, 3]] and rec["classes"].tolist() == [0, 0]
    assert drop_images_without_boxes([rec]) == [rec]


def test_lvis_reader_file_names_and_crowd(tmp_path):
    (tmp_path / "train2017").mkdir()
    (tmp_path / "train2017" / "000000000007.jpg").write_bytes(b"")
    data = {"images": [{"id": 7, "coco_url": "http://images.cocodataset.org/train2017/000000000007.jpg",
                        "height": 4, "width": 6, "neg_category_ids": [1]},
                       {"id": 8, "file_name": "COCO_train2014_000000000008.jpg", "height": 4, "width": 6}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 1}]}
    recs = load_lvis_json(data, tmp_path, with_masks=False).records
    assert recs[0]["file_name"] == str(tmp_path / "train2017" / "000000000007.jpg")
    assert recs[1]["file_name"] == str(tmp_path / "000000000008.jpg")
    assert len(recs[0]["boxes"]) == 0  # crowd annotations are dropped by the LVIS reader
    flat = load_lvis_json(data, tmp_path / "train2017", with_masks=False).records[0]  # root = the split folder
    assert flat["file_name"] == str(tmp_path / "train2017" / "000000000007.jpg")


def test_image_label_records(tmp_path):
    ann = make_image_label_dataset(tmp_path, num_images=3, size=48, seed=2)
    data = json.loads(ann.read_text())
    loaded = _load(f"lvis:{ann}:{tmp_path / IMAGE_DIR}")
    for img, rec in zip(data["images"], loaded.records):
        assert rec["pos_category_ids"] == [loaded.category_ids.index(c) for c in img["pos_category_ids"]]
        assert rec["captions"] == img["captions"] and len(rec["boxes"]) == 0
    assert loaded.class_names == _load(f"lvis:{make_detection_dataset(tmp_path, num_images=1, size=48, seed=0)}:"
                                       f"{tmp_path / IMAGE_DIR}").class_names


def test_unknown_category_is_an_error(tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 4}], "categories": [{"id": 1}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]}
    with pytest.raises(DeticError, match="category id 3"):
        load_lvis_json(data, tmp_path, with_masks=False)


def test_polygon_mask_rasterizes_inside_polygon():
    mask = polygons_to_mask([[2, 2, 8, 2, 8, 6, 2, 6], [0, 0, 1]], 10, 12)
    assert mask.shape == (10, 12) and mask[3:6, 3:8].all() and not mask[7:].any() and mask.sum() == 24


def test_missing_file_names_prepare_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    assert {"lvis_v1_train", "lvis_v1_train_norare", "lvis_v1_train+coco", "imagenet_lvis_v1", "imagenet_lvis-22k",
            "cc3m_v1_train_tags", "coco_zeroshot_train_oriorder"} <= set(train_dataset_names())  # fmt: skip
    cases = {"lvis_v1_train_norare": ("lvis/lvis_v1_train_norare.json", "lvis-norare"),
             "lvis_v1_train+coco": ("lvis/lvis_v1_train+coco_mask.json", "lvis-coco"),
             "imagenet_lvis-22k": ("imagenet/annotations/imagenet-22k_image_info_lvis-22k.json", "imagenet-lvis"),
             "cc3m_v1_train_tags": ("cc3m/train_image_info_tags.json", "cc3m-tags"),
             "coco_zeroshot_train_oriorder": ("coco/zero-shot/instances_train2017_seen_2_oriorder.json",
                                              "coco-zeroshot")}  # fmt: skip
    for name, (rel, target) in cases.items():
        with pytest.raises(DeticError) as err:
            resolve_train_dataset(name)
        msg = str(err.value)
        assert str(tmp_path / rel) in msg and f"detic data prepare {target}" in msg and "\n" not in msg
    (tmp_path / "lvis").mkdir()
    (tmp_path / "lvis/lvis_v1_train_norare.json").write_text("{}")
    with pytest.raises(DeticError, match="image folder .*coco"):
        resolve_train_dataset("lvis_v1_train_norare")
    (tmp_path / "coco").mkdir()
    ds = resolve_train_dataset("lvis_v1_train_norare")
    assert (ds.image_root, ds.style, ds.ann_type) == (tmp_path / "coco", "lvis", "box")
    with pytest.raises(DeticError, match="unknown training dataset"):
        resolve_train_dataset("lvis_v2_train")
    with pytest.raises(DeticError, match="not found"):
        resolve_train_dataset(f"coco:{tmp_path / 'none.json'}:{tmp_path}")


def test_dataset_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    cat_info = "metadata/lvis_v1_train_cat_info.json"
    assert dataset_path(f"datasets/{cat_info}") == tmp_path / cat_info
    assert dataset_path("models/x.pth") == Path("models/x.pth")
    assert dataset_path("/abs/datasets/x") == Path("/abs/datasets/x")
    monkeypatch.delenv("DETIC_DATASETS")
    assert dataset_path("datasets/a.json") == Path("datasets/a.json")
