"""A Result's formats (COCO, supervision, files) and the CLI's --jsonl, --save-txt, --save-crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_util

from detic_cli import DeticError
from tests.api.conftest import SMALL


def test_to_coco_and_to_supervision(small_detector, astronaut):
    result = small_detector(astronaut)
    assert len(result) > 0 and result.masks is not None
    coco = result.to_coco(7, {int(c): 1000 + int(c) for c in result.class_ids})
    assert len(coco) == len(result)
    for item, box, cls, mask in zip(coco, result.boxes, result.class_ids, result.masks):
        x, y, w, h = item["bbox"]
        np.testing.assert_allclose([x, y, x + w, y + h], box, rtol=1e-6)
        assert item["image_id"] == 7 and item["category_id"] == 1000 + cls
        np.testing.assert_array_equal(mask_util.decode({**item["segmentation"],
                                                        "counts": item["segmentation"]["counts"].encode()}), mask)
    assert result.to_coco(1)[0]["category_id"] == result.class_ids[0] + 1
    with pytest.raises(DeticError, match="no id for class"):
        result.to_coco(1, [])
    sv = pytest.importorskip("supervision")
    dets = result.to_supervision()
    assert isinstance(dets, sv.Detections) and len(dets) == len(result)
    np.testing.assert_array_equal(dets.xyxy, result.boxes)
    assert list(dets.data["class_name"]) == result.class_names and dets.mask.shape == result.masks.shape


def test_save_by_suffix(small_detector, astronaut, tmp_path):
    result = small_detector(astronaut)
    assert json.loads(result.save(tmp_path / "r.json").read_text()) == result.to_dict()
    arrays = np.load(result.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(arrays["stage_embeddings"], result.stage_embeddings)
    assert list(arrays["class_names"]) == result.class_names
    lines = result.save(tmp_path / "r.txt").read_text().splitlines()
    assert len(lines) == len(result) and lines[0].split()[0] == str(result.class_ids[0])
    assert result.save(tmp_path / "r.jpg").stat().st_size > 0
    np.testing.assert_array_equal(result.plot()[0:0], np.zeros((0, 512, 3), np.uint8))
    with pytest.raises(DeticError, match="unknown suffix"):
        result.save(tmp_path / "r.xyz")


def test_cli_jsonl_labels_and_crops(r18, astronaut, run_cli, tmp_path):
    _, config, weights, vocab, _ = r18
    common = ["--config", config, "--weights", weights, "--vocab", vocab, "--device", "cpu", *SMALL]
    code, out, err = run_cli("detect", astronaut, *common, "--jsonl", "-", "--json", tmp_path / "d.json",
                             "--output", tmp_path / "out", "--save-txt", "--save-crops", tmp_path / "crops",
                             "--embeddings", "--class-threshold", "class_0=0.99")
    assert code == 0, err
    record = json.loads(out.strip())
    assert [record] == json.loads((tmp_path / "d.json").read_text())
    items = record["instances"]
    assert items and len(items[0]["embedding"]) == 512
    labels = (tmp_path / "out/labels/astronaut.txt").read_text().splitlines()
    assert len(labels) == len(items) and all(0 <= float(v) <= 1 for v in labels[0].split()[1:])
    assert len((tmp_path / "out/labels/classes.txt").read_text().splitlines()) == 1203
    crops = sorted(p.parent.name for p in (tmp_path / "crops").rglob("*.jpg"))
    assert crops == sorted(i["class_name"] for i in items)
    code, _, err = run_cli("detect", astronaut, *common, "--save-txt")
    assert code == 1 and "--save-txt" in err and "Traceback" not in err
    code, _, err = run_cli("detect", astronaut, *common, "--class-threshold", "person")
    assert code == 1 and "NAME=THRESHOLD" in err
