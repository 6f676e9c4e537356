"""A new user's path from raw LVIS v1 / COCO 2017 files to a trained model, through the CLI only:
`zoo pull --vocab lvis` -> `train --row` (refused: names the `data prepare` command) -> `data prepare lvis-coco`
-> `data prepare lvis-norare` -> `data status` -> `train --row` (init backbone pulled and converted from a mirror
folder) -> `detect` with the trained checkpoint. Nothing touches the network."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
import torch
import torchvision
from PIL import Image

from detic_cli.data.synthetic import make_detection_dataset
from tests.data.prepare.conftest import COCO_SYNSETS, load, write_json

ROW = "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x"  # box-supervised R18 stage: DATASETS.TRAIN = lvis_v1_train+coco
# drawn shape id -> (COCO id, COCO name, LVIS v1 id of the same synset)
SHAPES = {1: (1, "person", 793), 3: (2, "bicycle", 94), 4: (5, "airplane", 3), 7: (17, "cat", 225),
          8: (18, "dog", 378)}
APPLESAUCE = 13  # a rare LVIS v1 class
# tiny inputs, few proposals and narrow heads; the 1203 LVIS classes, the federated loss and masks stay on
SMALL = ["INPUT.TRAIN_SIZE=96", "SOLVER.IMS_PER_BATCH=2", "DATALOADER.NUM_WORKERS=0",
         "MODEL.CENTERNET.NUM_BOX_CONVS=1", "MODEL.CENTERNET.NUM_CLS_CONVS=1", "MODEL.ROI_MASK_HEAD.NUM_CONV=1",
         "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=16", "MODEL.CENTERNET.PRE_NMS_TOPK_TRAIN=100",
         "MODEL.CENTERNET.POST_NMS_TOPK_TRAIN=32", "MODEL.ROI_BOX_HEAD.FC_DIM=64", "MODEL.FPN.OUT_CHANNELS=64",
         "MODEL.ROI_MASK_HEAD.CONV_DIM=16", "SEED=3"]


def raw_lvis_coco(root, lvis_categories: list[dict]) -> None:
    """The public layout: coco/train2017/<12 digits>.jpg, coco/annotations/instances_train2017.json and
    lvis/lvis_v1_train.json (all 1203 categories; images by coco_url). LVIS annotates every other shape,
    plus a rare class on every third one; COCO annotates every shape."""
    drawn = json.loads(make_detection_dataset(root.parent / "drawn", num_images=6, size=96, seed=0,
                                              style="coco").read_text())
    (root / "coco" / "train2017").mkdir(parents=True)
    images = []
    for img in drawn["images"]:
        name = f"{img['id']:012d}.jpg"
        Image.open(root.parent / "drawn" / "images" / img["file_name"]).convert("RGB").save(
            root / "coco" / "train2017" / name, quality=95)
        images.append({**img, "file_name": name})
    coco_anns = [{**a, "category_id": SHAPES[a["category_id"]][0]} for a in drawn["annotations"]]
    write_json(root / "coco" / "annotations" / "instances_train2017.json", {
        "images": images, "annotations": coco_anns,
        "categories": [{"id": c, "name": n, "supercategory": "thing"} for c, n, _ in SHAPES.values()]})
    to_lvis = {coco: lvis for coco, _, lvis in SHAPES.values()}
    lvis_anns = []
    for k, ann in enumerate(coco_anns):
        shape = {key: ann[key] for key in ("image_id", "bbox", "area", "segmentation")}
        if k % 2 == 0:
            lvis_anns.append({**shape, "id": len(lvis_anns) + 1, "category_id": to_lvis[ann["category_id"]]})
        if k % 3 == 0:
            lvis_anns.append({**shape, "id": len(lvis_anns) + 1, "category_id": APPLESAUCE})
    write_json(root / "lvis" / "lvis_v1_train.json", {
        "images": [{"id": im["id"], "height": im["height"], "width": im["width"], "neg_category_ids": [],
                    "not_exhaustive_category_ids": [],
                    "coco_url": f"http://images.cocodataset.org/train2017/{im['file_name']}"} for im in images],
        "annotations": lvis_anns, "categories": lvis_categories})


@pytest.fixture
def mirror(tmp_path, shared_dir):
    """A folder standing in for the public hosts: lvis-api's COCO -> synset mapping, the built-in LVIS vocabulary
    and torchvision's ResNet-18 file (random values) that the R18 recipe starts from."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    write_json(folder / "coco_to_synset.json",
               {f"class{k}": {"coco_cat_id": k, "synset": v} for k, v in COCO_SYNSETS.items()})
    for name in ("lvis_v1_clip_a+cname.npy", "lvis_v1_train_cat_info.json"):
        shutil.copy(shared_dir / "detic-metadata" / name, folder / name)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18-5c106cde.pth")
    return folder


def _status(run_cli) -> dict[str, str]:
    code, out, err = run_cli("data", "status")
    assert code == 0, err
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()[1:]}


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_prepare_then_train_then_detect(run_cli, tmp_path, monkeypatch, shared_dir, mirror):
    root = tmp_path / "datasets"
    raw_lvis_coco(root, load(shared_dir / "detic-metadata" / "lvis_v1_train_cat_info.json"))
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    monkeypatch.delenv("DETIC_ZOO_MIRROR", raising=False)  # the mirror comes from --mirror only
    code, _, err = run_cli("zoo", "pull", "--vocab", "lvis", "--mirror", mirror)
    assert code == 0, err
    out = tmp_path / "run"
    train = ["train", "--row", ROW, "--device", "cpu", "--mirror", mirror, "--output-dir", out, *SMALL]

    code, _, err = run_cli(*train)  # nothing prepared yet
    assert code == 1 and len(_errors(err)) == 1, err
    assert "training dataset lvis_v1_train+coco:" in err and "`detic data prepare lvis-coco`" in err
    assert _status(run_cli)["lvis-coco"] == "missing detic data prepare lvis-coco"

    code, stdout, err = run_cli("data", "prepare", "lvis-coco", "--mirror", mirror)
    assert code == 0, err
    merged = load(root / "lvis" / "lvis_v1_train+coco_mask.json")
    raw = load(root / "lvis" / "lvis_v1_train.json")
    assert stdout.split() == [str(root / "lvis" / "lvis_v1_train+coco_mask.json")]
    assert "DETIC_ZOO_MIRROR" not in os.environ  # --mirror applies to that command only
    assert len(raw["annotations"]) < len(merged["annotations"]) and len(merged["categories"]) == 1203

    code, _, err = run_cli(*train)  # the federated loss's class frequencies come from lvis-norare
    assert code == 1 and len(_errors(err)) == 1, err
    assert "MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH" in err and "`detic data prepare lvis-norare`" in err
    assert not out.exists()  # refused before anything is written

    code, _, err = run_cli("data", "prepare", "lvis-norare")
    assert code == 0, err
    assert all(a["category_id"] != APPLESAUCE for a in load(root / "lvis" / "lvis_v1_train_norare.json")["annotations"])
    status = _status(run_cli)
    assert status["lvis-coco"].startswith("present") and status["lvis-norare"].startswith("present"), status

    code, _, err = run_cli(*train, "--max-iter", "3", "--log-period", "1")
    assert code == 0, err
    assert "resnet18.detector.pth: 100 tensors loaded" in err  # the converted torchvision backbone
    assert "iteration 3/3  loss " in err  # progress lines when stderr is not a terminal
    assert f"stopped after iteration 3 of 180000; checkpoints and metrics.json in {out}; --resume goes on" in err
    assert {p.name for p in out.glob("*.pth")} == {"model_0000002.pth"}
    assert (out / "last_checkpoint").read_text() == "model_0000002.pth"
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [1, 2, 3]
    for record in lines:
        losses = {k: v for k, v in record.items() if k.startswith("loss_")}
        assert {"loss_mask", "loss_cls_stage0", "loss_centernet_loc"} <= set(losses)
        assert all(math.isfinite(v) for v in [*losses.values(), record["total_loss"]])

    image = root / "coco" / "train2017" / "000000000001.jpg"
    code, _, err = run_cli("detect", image, "--config", out / "config.yaml", "--weights", out / "model_0000002.pth",
                           "--vocab", "lvis", "--device", "cpu", "--threshold", "0", "--json", tmp_path / "det.json")
    assert code == 0, err
    [record] = load(tmp_path / "det.json")
    assert (record["height"], record["width"]) == Image.open(image).size[::-1]
    assert record["instances"] and all(0 <= d["class_index"] < 1203 for d in record["instances"])
