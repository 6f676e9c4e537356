"""`detic cross-eval` end to end: a zoo row from a mirror folder on tiny Objects365- and OpenImages-format sets."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest

from detic_cli.cli.cross_eval import cross_table
from detic_cli.engine.cross_eval_job import build_summary, cross_row, select_targets
from detic_cli.zoo import cache
from detic_cli.zoo.catalog import DEFAULT_MODEL
from detic_cli.zoo.resolve import configs_dir, find_row

R18_ROW = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size"
FAST = ["INPUT.MIN_SIZE_TEST=96", "INPUT.MAX_SIZE_TEST=128", "TEST.DETECTIONS_PER_IMAGE=30",
        "MODEL.CENTERNET.PRE_NMS_TOPK_TEST=200", "MODEL.CENTERNET.POST_NMS_TOPK_TEST=32"]
CROPS = [("astronaut", 100, 60), ("chelsea", 60, 20)]
VOCAB_FILES = ("o365_clip_a+cnamefix.npy", "Objects365_names_fix.csv", "oid_clip_a+cname.npy",
               "challenge-2019-classes-description-500.csv")
# OpenImages: Animal (7) is the parent of Cat (259) and Dog (489); Person (339) stands alone.
OID_HIERARCHY = {"LabelName": "/m/0bl9f", "Subcategory": [
    {"LabelName": "/m/0jbk", "Subcategory": [{"LabelName": "/m/01yrx"}, {"LabelName": "/m/0bt9lr"}]},
    {"LabelName": "/m/01g317"},
]}  # fmt: skip


def _images(shared: Path, folder: Path) -> list[dict]:
    folder.mkdir(parents=True)
    images = []
    for i, (name, x0, y0) in enumerate(CROPS):
        pixels = cv2.imread(str(shared / f"parity/images/{name}.jpg"))[y0:y0 + 150, x0:x0 + 200]
        cv2.imwrite(str(folder / f"{i}.jpg"), pixels)
        images.append({"id": 10 + i, "file_name": f"{i}.jpg", "height": pixels.shape[0], "width": pixels.shape[1]})
    return images


def _box(i: int, image: dict, cat: int, group: int = 0) -> dict:
    w, h = image["width"], image["height"]
    box = [w * 0.1, h * 0.05, w * 0.8, h * 0.9]
    return {"id": i, "image_id": image["id"], "category_id": cat, "bbox": box, "area": box[2] * box[3],
            "iscrowd": group}


@pytest.fixture(scope="module")
def datasets(shared_dir, tmp_path_factory) -> Path:
    """objects365_v2_val and oid_val_expanded in the original layout, two pictures each."""
    root = tmp_path_factory.mktemp("datasets")
    meta = shared_dir / "detic-metadata"
    with open(meta / "Objects365_names_fix.csv", newline="") as f:
        o365_cats = [{"id": int(r[0]), "name": r[1]} for r in csv.reader(f) if r]
    images = _images(shared_dir, root / "objects365/val")
    anns = [_box(1, images[0], 1), _box(2, images[1], 140), _box(3, images[1], 93)]
    (root / "objects365/annotations").mkdir(parents=True)
    (root / "objects365/annotations/zhiyuan_objv2_val.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": o365_cats}))

    images = _images(shared_dir, root / "oid/images/validation")
    for image, pos, neg in zip(images, ([339], [259, 489, 7]), ([259, 489], [339])):
        image.update(pos_category_ids=pos, neg_category_ids=neg)
    anns = [_box(1, images[0], 339), _box(2, images[1], 259), _box(3, images[1], 7),
            _box(4, images[1], 489, group=1), _box(5, images[1], 7, group=1)]
    (root / "oid/annotations").mkdir(parents=True)
    oid_cats = json.loads((meta / "oid_v4_categories.json").read_text())
    (root / "oid/annotations/oid_challenge_2019_val_expanded.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": oid_cats}))
    (root / "oid/annotations/challenge-2019-label500-hierarchy.json").write_text(json.dumps(OID_HIERARCHY))
    return root


@pytest.fixture
def mirror(shared_dir, parity_checkpoint, tmp_path) -> Path:
    """The R18 row's checkpoint (parity weights) and the Objects365 / OpenImages vocabulary files."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(parity_checkpoint(f"{R18_ROW}.yaml"), folder / find_row(R18_ROW).weights.filename)
    for name in VOCAB_FILES:
        shutil.copy(shared_dir / "detic-metadata" / name, folder / name)
    return folder


def test_cross_eval_equals_eval_on_each_dataset(run_cli, datasets, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(datasets))
    out = tmp_path / "cross"
    code, stdout, err = run_cli("cross-eval", "--row", R18_ROW, "--mirror", mirror, "--device", "cpu",
                                "--output-dir", out, *FAST)
    assert code == 0, err
    assert "Objects365 box mAP" in stdout and "OpenImages box mAP50" in stdout and "Cross-dataset" in stdout
    summary = json.loads((out / "cross_eval.json").read_text())
    assert summary["overrides"] == ["MODEL.MASK_ON=False", *FAST]  # a real-time row: no cross-dataset settings
    weights = cache.cached_path(find_row(R18_ROW).weights)
    for dataset, vocab, metric in (("objects365_v2_val", "objects365", "bbox/AP"),
                                   ("oid_val_expanded", "openimages", "bbox/AP50_expand")):
        code, _, err = run_cli("eval", "--config", configs_dir() / f"{R18_ROW}.yaml", "--weights", weights,
                               "--dataset", dataset, "--vocab", vocab, "--device", "cpu",
                               "--output-dir", tmp_path / dataset, "MODEL.MASK_ON=False", *FAST)
        assert code == 0, err
        metrics = json.loads((tmp_path / dataset / "metrics.json").read_text())
        assert json.loads((out / dataset / "metrics.json").read_text()) == metrics
        assert (out / dataset / "results.json").read_text() == (tmp_path / dataset / "results.json").read_text()
        assert json.loads((out / dataset / "results.json").read_text())  # the model did detect something
        entry = summary["datasets"][dataset]
        assert entry["vocab"] == vocab and entry["measured"] == metrics[metric] and entry["published"] is None
    # a rerun finds every image done and scores again from the shards
    code, stdout, err = run_cli("cross-eval", "--row", R18_ROW, "--device", "cpu", "--output-dir", out,
                                "--dataset", "oid", *FAST)
    assert code == 0, err
    assert "2 image(s) already done" in err and "OpenImages box mAP50" in stdout
    assert list(json.loads((out / "cross_eval.json").read_text())["datasets"]) == ["oid_val_expanded"]


def test_missing_dataset_and_bad_subset(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    code, _, err = run_cli("cross-eval", "--row", R18_ROW, "--dataset", "oid")
    assert code == 1 and "oid_val_expanded is not ready" in err and "challenge-2019-label500-hierarchy" in err
    code, _, err = run_cli("cross-eval", "--row", R18_ROW, "--dataset", "coco")
    assert code == 1 and "choose one of objects365" in err
    code, _, err = run_cli("cross-eval", "--row", "no_such_model")
    assert code == 1 and "not ready" in err  # the datasets are checked before the model is looked up


def test_table_shows_measured_next_to_published(tmp_path):
    row = cross_row(find_row(DEFAULT_MODEL))  # the default model is also a real-time row
    assert row is not None and row.name == "cross-dataset/Detic_C2_SwinB_896_4x_IN-21K+COCO"
    assert "MODEL.MASK_ON=False" in row.eval_overrides and "MODEL.TEST_NUM_CLASSES=(500,365)" in row.eval_overrides
    (tmp_path / "objects365_v2_val").mkdir()
    (tmp_path / "objects365_v2_val/metrics.json").write_text(json.dumps({"bbox/AP": 20.04, "bbox/AP50": 30.0}))
    summary = build_summary(row, Path("c.yaml"), Path("w.pth"), [], tmp_path, select_targets(["o365"]))
    assert summary["published"] == {"o365_box_ap": 21.6, "oid_box_ap50": 54.6}
    assert summary["datasets"]["objects365_v2_val"]["measured"] == 20.04
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(cross_table(summary))
    text = console.export_text()
    assert "Detic_C2_SwinB_896_4x_IN-21K+COCO" in text and "47h" in text
    assert "20.0 / 21.6" in text and "- / 54.6" in text and row.weights.url in text
