"""`detic train` end to end: the R18 recipe shrunk to a few CPU iterations on a tiny COCO-format dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

R18_STAGE = "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x"
CATEGORIES = {1: "person", 17: "cat", 18: "dog"}  # COCO ids
# small inputs, few proposals and narrow heads keep an iteration around a second on a CPU
SMALL = ["MODEL.ROI_HEADS.NUM_CLASSES=3", "MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False", "INPUT.TRAIN_SIZE=96",
         "MODEL.CENTERNET.NUM_BOX_CONVS=1", "MODEL.CENTERNET.NUM_CLS_CONVS=1", "MODEL.ROI_MASK_HEAD.NUM_CONV=1",
         "SOLVER.IMS_PER_BATCH=2", "DATALOADER.NUM_WORKERS=0", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE=16",
         "MODEL.CENTERNET.PRE_NMS_TOPK_TRAIN=100", "MODEL.CENTERNET.POST_NMS_TOPK_TRAIN=32",
         "MODEL.ROI_BOX_HEAD.FC_DIM=64", "MODEL.FPN.OUT_CHANNELS=64", "MODEL.ROI_MASK_HEAD.CONV_DIM=16",
         "SOLVER.MAX_ITER=2", "SOLVER.WARMUP_ITERS=1", "SOLVER.CHECKPOINT_PERIOD=2", "SEED=5"]


@pytest.fixture(scope="module")
def datasets_root(shared_dir, tmp_path_factory, parity_crops):
    """$DETIC_DATASETS with tiny/{gt.json,images/} (4 crops, boxes + polygons) and metadata/tiny_clip.npy."""
    root = tmp_path_factory.mktemp("datasets")
    images = root / "tiny" / "images"
    images.mkdir(parents=True)
    gt = parity_crops(images, [("astronaut", 100, 60, 1), ("chelsea", 0, 0, 17), ("chelsea", 120, 40, 18),
                               ("astronaut", 0, 0, 1)])
    (root / "tiny" / "gt.json").write_text(json.dumps(gt))
    (root / "coco" / "annotations").mkdir(parents=True)  # the same pictures as the named coco_2017_val
    shutil.copytree(images, root / "coco" / "val2017")
    (root / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps(gt))
    coco_ids = sorted(c["id"] for c in json.loads((shared_dir / "detic-metadata/coco_categories.json").read_text()))
    table = np.load(shared_dir / "detic-metadata/coco_clip_a+cname.npy")
    (root / "metadata").mkdir()
    np.save(root / "metadata" / "tiny_clip.npy", table[[coco_ids.index(k) for k in sorted(CATEGORIES)]])
    return root


@pytest.fixture
def train_args(datasets_root, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(datasets_root))
    data = f'DATASETS.TRAIN=("coco:{datasets_root}/tiny/gt.json:{datasets_root}/tiny/images",)'
    return ["--row", R18_STAGE, "--device", "cpu", "--log-period", "1", data,
            "MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH=datasets/metadata/tiny_clip.npy", *SMALL]


def _errors(err: str) -> list[str]:
    """The error lines (notes such as "fp16 is for CUDA" may come before)."""
    return [line for line in err.splitlines() if line.startswith("error:")]


def _iterations(folder):
    return [json.loads(line)["iteration"] for line in (folder / "metrics.json").read_text().splitlines()]


def test_stop_resume_and_outputs(run_cli, train_args, backbone, tmp_path, monkeypatch):
    import detic_cli.engine.init_weights as init_weights

    monkeypatch.setattr(init_weights, "resolve_init_weights", lambda row, mirror=None: tmp_path / "none.pth")
    out = tmp_path / "run"
    code, _, err = run_cli("train", *train_args, "--output-dir", out, "--weights", tmp_path / "init.pth")
    assert code == 1 and "init.pth: checkpoint not found" in err and len(_errors(err)) == 1
    assert not (out / "last_checkpoint").exists()

    code, _, err = run_cli("train", *train_args, "--output-dir", out, "--max-iter", "1", "--amp", "off")
    assert code == 1 and "none.pth: checkpoint not found" in err  # the row's init is what --row starts from
    code, _, err = run_cli("train", *train_args, "--output-dir", out, "--max-iter", "1", "--weights", backbone)
    assert code == 0, err
    assert "tensors loaded" in err and "left to random init: backbone.fpn" in err
    assert {p.name for p in out.glob("*.pth")} == {"model_0000000.pth"} and _iterations(out) == [1]
    code, _, err = run_cli("train", *train_args, "--output-dir", out)
    assert code == 1 and "--resume" in err  # never overwrites a run's checkpoints
    code, _, err = run_cli("train", *train_args, "--output-dir", out, "--resume")
    assert code == 0, err
    assert "resuming from" in err and "at iteration 2" in err
    assert {p.name for p in out.glob("*.pth")} == {"model_0000000.pth", "model_0000001.pth", "model_final.pth"}
    assert _iterations(out) == [1, 2]
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert list(out.glob("events.out.tfevents.*"))
    written = (out / "config.yaml").read_text()
    assert "tiny_clip.npy" in written and "MAX_ITER: 2" in written
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["iteration"] == 1 and final["data"]["seed"] == 5
    code, _, err = run_cli("train", *train_args, "--output-dir", tmp_path / "whole", "--weights", backbone)
    assert code == 0, err
    whole = torch.load(tmp_path / "whole" / "model_final.pth", weights_only=True)["model"]
    assert all(torch.equal(whole[k], v) for k, v in final["model"].items())  # stopped + resumed == one run

    from detic_cli.checkpoint.load import load_checkpoint
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    load_checkpoint(build_model(load_config(out / "config.yaml")), out / "model_final.pth")  # detect's loader


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A detector-format checkpoint holding only the ResNet-18 trunk (random values), like a converted backbone."""
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model
    from detic_cli.zoo.resolve import config_path

    model = build_model(load_config(config_path(f"{R18_STAGE}.yaml"), SMALL))
    path = tmp_path_factory.mktemp("init") / "backbone.pth"
    torch.save({"model": {k: v for k, v in model.state_dict().items() if k.startswith("backbone.bottom_up.")}}, path)
    return path


@pytest.mark.parametrize("extra, expected", [
    (["--config", "missing.yaml"], "missing.yaml: config file not found"),
    (["--row", R18_STAGE, "--config", "x.yaml"], "give either --row NAME"),
    (["--row", "no-such-row"], "is not in the zoo"),
    (["--row", R18_STAGE, "--amp", "fp8"], "--amp fp8: expected one of fp16, bf16, off"),
    (["--row", R18_STAGE, "SOLVER.IMS_PER_BATCH=3"], None),
])
def test_usage_errors_are_one_line(run_cli, tmp_path, monkeypatch, extra, expected):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    code, _, err = run_cli("train", *extra, "--output-dir", tmp_path / "out", "--device", "cpu")
    assert code == 1 and len(_errors(err)) == 1, err
    if expected is None:  # the default vocabulary is missing first
        expected = "lvis_v1_clip_a+cname.npy not found; run `detic zoo pull --vocab lvis`"
    assert expected in err


def test_missing_dataset_files_are_one_line(run_cli, shared_dir, tmp_path, monkeypatch):
    from detic_cli.vocab.builtin import BUILTINS
    from detic_cli.zoo.cache import cached_path

    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path / "datasets"))
    vocab = cached_path(BUILTINS["lvis"].embeddings)  # as `detic zoo pull --vocab lvis` leaves it
    vocab.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_dir / "detic-metadata/lvis_v1_clip_a+cname.npy", vocab)
    code, _, err = run_cli("train", "--row", R18_STAGE, "--device", "cpu", "--output-dir", tmp_path / "out")
    assert code == 1 and len(_errors(err)) == 1, err
    assert "training dataset lvis_v1_train+coco:" in err and "not found" in err
    assert not (tmp_path / "out").exists()


def test_torchrun_two_processes_on_cpu(train_args, backbone, tmp_path, datasets_root):
    """`torchrun --nproc_per_node 2 -m detic_cli train` with gloo: one image per process and iteration."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DETIC_DATASETS": str(datasets_root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "detic_cli",
           "train", *map(str, train_args), "--output-dir", str(out), "--weights", str(backbone),
]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("tensors loaded") == 1  # rank 0 alone reports
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["data"]["world_size"] == 2 and len(final["rng"]) == 2
    assert _iterations(out) == [1, 2]


def test_periodic_evaluation(run_cli, train_args, backbone, tmp_path, datasets_root):
    """Evaluation during training runs the model being trained: the same results and metrics as evaluating the
    checkpoint saved at that iteration with `detic eval`'s job."""
    from detic_cli.engine.evaluate import evaluate

    out = tmp_path / "run"
    evals = ["TEST.EVAL_PERIOD=1", 'DATASETS.TEST=("coco_2017_val",)', "MODEL.RESET_CLS_TESTS=True",
             'MODEL.TEST_CLASSIFIERS=("datasets/metadata/tiny_clip.npy",)', "INPUT.MIN_SIZE_TEST=96",
             "INPUT.MAX_SIZE_TEST=128"]
    code, _, err = run_cli("train", *train_args, *evals, "--output-dir", out, "--max-iter", "1", "--weights",
                           backbone)
    assert code == 0, err
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    scored = [r for r in lines if "coco_2017_val/bbox/AP" in r]
    assert [r["iteration"] for r in scored] == [1] and "coco_2017_val/segm/AP" in scored[0]
    assert (out / "inference" / "iter_0000001" / "coco_2017_val" / "results.json").is_file()
    assert not list((out / "inference").glob(".weights*"))
    report = evaluate(config=out / "config.yaml", weights=out / "model_0000000.pth", dataset="coco_2017_val",
                      vocab=np.load(datasets_root / "metadata" / "tiny_clip.npy"), output_dir=tmp_path / "eval",
                      device="cpu")
    during = {k.split("/", 1)[1]: v for k, v in scored[0].items() if k.startswith("coco_2017_val/")}
    assert during.keys() == report.metrics.keys()
    assert all(np.isnan(v) if during[k] is None else np.isclose(during[k], v, equal_nan=True)
               for k, v in report.metrics.items())
    trained = json.loads((out / "inference" / "iter_0000001" / "coco_2017_val" / "results.json").read_text())
    saved = json.loads((report.output_dir / "results.json").read_text())
    assert trained and len(trained) == len(saved)
    for a, b in zip(trained, saved):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert np.allclose(a["bbox"], b["bbox"], atol=1e-3) and abs(a["score"] - b["score"]) < 1e-5
    code, _, err = run_cli("train", *train_args, "TEST.EVAL_PERIOD=2", 'DATASETS.TEST=("lvis_v1_val",)',
                           "--output-dir", tmp_path / "other")
    assert code == 1 and "lvis_v1_val" in _errors(err)[0]  # checked before training starts


DETR_SMALL = ["MODEL.WEIGHTS=", "MODEL.RESNETS.DEPTH=18", "MODEL.RESNETS.RES2_OUT_CHANNELS=64",
              "MODEL.DETR.NUM_CLASSES=5", "MODEL.DETR.NHEADS=2", "MODEL.DETR.ENC_LAYERS=1", "MODEL.DETR.DEC_LAYERS=2",
              "MODEL.DETR.DIM_FEEDFORWARD=64", "MODEL.DETR.NUM_OBJECT_QUERIES=10",
              "MODEL.ROI_BOX_HEAD.CAT_FREQ_PATH=datasets/metadata/shapes_cat_info.json",
              "INPUT.MIN_SIZE_TRAIN=[64,80]", "INPUT.MAX_SIZE_TRAIN=96", "INPUT.CROP.SIZE=[48,64]",
              "SOLVER.IMS_PER_BATCH=2", "DATALOADER.NUM_WORKERS=0", "SOLVER.MAX_ITER=3", "SOLVER.WARMUP_ITERS=1",
              "SOLVER.CHECKPOINT_PERIOD=100", "SEED=3"]


def test_deformable_detr_trains_through_the_cli(run_cli, shared_dir, tmp_path, monkeypatch):
    """The BoxSup DETR recipe (federated focal loss, aux + encoder losses), shrunk, for 3 CPU iterations."""
    from detic_cli.data.synthetic import make_detection_dataset

    root = tmp_path / "datasets"
    ann = make_detection_dataset(root / "shapes", num_images=4, size=96, seed=0)
    (root / "metadata").mkdir()
    cats = json.loads(ann.read_text())["categories"]
    (root / "metadata/shapes_cat_info.json").write_text(json.dumps([{"id": c["id"], "image_count": c["image_count"]}
                                                                    for c in cats]))
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    config = shared_dir / "detic-reference" / "configs" / "BoxSup-DeformDETR_L_R50_4x.yaml"
    out = tmp_path / "out"
    code, _, err = run_cli("train", "--config", str(config), "--device", "cpu", "--log-period", "1",
                           "--output-dir", str(out), f'DATASETS.TRAIN=("lvis:{ann}:{ann.parent / "images"}",)',
                           *DETR_SMALL)
    assert code == 0, err
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in lines] == [1, 2, 3]
    names = {f"loss_{n}{s}" for n in ("ce", "bbox", "giou") for s in ("", "_0", "_enc")}
    for r in lines:
        assert {k for k in r if k.startswith("loss_")} == names
        assert all(np.isfinite(r[k]) and r[k] >= 0 for k in names) and r["loss_ce"] > 0
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
