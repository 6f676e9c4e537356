"""`detic label` as a user runs it: interrupted and resumed, checked against its own shards, trained on and
evaluated (the loop closes), under torchrun with two CPU processes, and refusing bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.cli.test_train_cli import R18_STAGE, SMALL, backbone  # noqa: F401 (the fixture)

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
FAST = ["INPUT.MIN_SIZE_TEST=96", "INPUT.MAX_SIZE_TEST=128", "MODEL.CENTERNET.POST_NMS_TOPK_TEST=32"]
ONTOLOGY = "person=person,cat=animal,dog=animal"


@pytest.fixture(scope="module")
def material(shared_dir, tmp_path_factory, parity_crops):
    """pics/ (4 crops of the parity pictures), metadata/tiny_clip.npy (person, cat, dog rows) and its names."""
    root = tmp_path_factory.mktemp("label")
    (root / "pics").mkdir()
    parity_crops(root / "pics", [("astronaut", 100, 60, 1), ("chelsea", 0, 0, 17), ("chelsea", 120, 40, 18),
                                 ("astronaut", 0, 0, 1)])
    coco_ids = sorted(c["id"] for c in json.loads((shared_dir / "detic-metadata/coco_categories.json").read_text()))
    table = np.load(shared_dir / "detic-metadata/coco_clip_a+cname.npy")
    (root / "metadata").mkdir()
    np.save(root / "metadata" / "tiny_clip.npy", table[[coco_ids.index(k) for k in (1, 17, 18)]])
    (root / "names.txt").write_text("person\ncat\ndog\n")
    return root


@pytest.fixture
def model_args(shared_dir, parity_checkpoint, material):
    return ["--config", shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
            "--vocab", material / "metadata" / "tiny_clip.npy", "--vocab-names", material / "names.txt",
            "--device", "cpu", "--threshold", "0.3", *FAST]


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_interrupted_resumed_then_trained_and_evaluated(run_cli, model_args, material, backbone, tmp_path,  # noqa: F811
                                                        monkeypatch):
    import supervision as sv
    from pycocotools.coco import COCO

    out = tmp_path / "ds"
    common = ["label", material / "pics", "--out", out, "--ontology", ONTOLOGY, "--format", "both", *model_args]
    code, _, err = run_cli(*common, "--max-images", "2")
    assert code == 0 and "2 of 4 input(s) left" in err, err
    code, status, _ = run_cli("label", "--status", out)
    assert code == 0 and "2/4 input(s) labelled; dataset not written yet" in status
    code, _, err = run_cli(*common)
    assert code == 0 and "2 of 4 input(s) already done" in err, err
    assert "label: 4 image(s)" in err and "detections per class: person " in err and "animal " in err
    shards = [json.loads(p.read_text()) for p in sorted((out / ".label" / "shards").glob("*.json"))]
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    assert [c["name"] for c in coco.dataset["categories"]] == ["person", "animal"]
    yolo = sv.DetectionDataset.from_yolo(str(out / "images/train"), str(out / "labels/train"), str(out / "data.yaml"))
    for shard in shards:
        name = os.path.basename(shard["file_name"])
        image = next(i for i in coco.dataset["images"] if i["file_name"] == name)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        want = shard["instances"]
        assert [a["category_id"] - 1 for a in anns] == [i["class_index"] for i in want]
        assert np.allclose([a["bbox"][:2] for a in anns], [i["box_xyxy"][:2] for i in want])
        assert all(isinstance(a["segmentation"], (list, dict)) and 0 < a["score"] <= 1 for a in anns)
        got = next(d for p, d in yolo.annotations.items() if os.path.basename(p) == name)
        assert got.class_id.tolist() == [i["class_index"] for i in want]
    code, _, err = run_cli(*common[:-2], "--threshold", "0.4", *FAST)
    assert code == 1 and len(_errors(err)) == 1 and "threshold differ" in err and "--fresh" in err

    monkeypatch.setenv("DETIC_DATASETS", str(material))
    two = material / "metadata" / "two.npy"  # the labelled dataset has two classes: person, animal
    np.save(two, np.load(material / "metadata" / "tiny_clip.npy")[:2])
    data = f'DATASETS.TRAIN=("coco:{out}/annotations/instances_train.json:{out}/images/train",)'
    code, _, err = run_cli("train", "--row", R18_STAGE, "--device", "cpu", data, "--output-dir", tmp_path / "run",
                           "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH=datasets/metadata/two.npy", *SMALL,
                           "MODEL.ROI_HEADS.NUM_CLASSES=2", "SOLVER.MAX_ITER=1", "--weights", backbone)
    assert code == 0, err
    code, table, err = run_cli("eval", "--config", tmp_path / "run" / "config.yaml", "--weights",
                               tmp_path / "run" / "model_final.pth", "--dataset",
                               f"coco:{out}/annotations/instances_train.json:{out}/images/train", "--vocab", two,
                               "--device", "cpu", "--output-dir", tmp_path / "eval", *FAST)
    assert code == 0, err
    assert "bbox/AP" in table and (tmp_path / "eval" / "metrics.json").is_file()


def test_torchrun_two_processes_share_the_inputs(model_args, material, tmp_path):
    out = tmp_path / "ds"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "detic_cli",
           "label", str(material / "pics"), "--out", str(out), "--format", "yolo", "--split", "train=0.5,val=0.5",
           *map(str, model_args)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("label: 4 image(s)") == 1  # rank 0 alone writes and reports
    shards = [json.loads(p.read_text()) for p in (out / ".label" / "shards").glob("*.json")]
    assert [s["rank"] for s in sorted(shards, key=lambda s: s["key"])] == [0, 1, 0, 1]  # rank::world_size
    labels = list((out / "labels").glob("*/*.txt"))
    assert len(labels) == 4 and (out / "data.yaml").is_file()


@pytest.mark.parametrize("extra, expected", [
    ([], "give --out DIR"),
    (["--out", "DS", "--format", "xml"], "--format xml: expected coco, yolo or both"),
    (["--out", "DS", "--masks", "bits"], "--masks bits: expected one of polygon, rle, none"),
    (["--out", "DS", "--ontology", "a=b,a=c"], "the prompt 'a' is given twice"),
    (["--out", "DS", "--split", "train"], "--split train: expected NAME=FRACTION"),
    (["--out", "DS", "missing.jpg", "--vocab", "a"], "missing.jpg: no such file"),
    (["--out", "DS", "--every", "0", "--vocab", "a"], "--every 0: must be at least 1"),
    (["--out", "DS", "--track", "--vocab", "a"], "--track follows objects across video frames"),
])
def test_bad_input_is_one_line(run_cli, material, tmp_path, extra, expected):
    args = [str(a).replace("DS", str(tmp_path / "ds")) for a in extra]
    code, _, err = run_cli("label", material / "pics", *args, "--device", "cpu")
    assert code == 1 and len(_errors(err)) == 1 and expected in err, err
    code, _, err = run_cli("label", "--status", tmp_path / "nothing")
    assert code == 1 and "not a `detic label` folder" in err
