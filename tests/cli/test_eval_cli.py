"""`detic eval` end to end: a parity model on a tiny COCO-format dataset, interrupted and resumed."""

from __future__ import annotations

import json

import numpy as np
import pytest

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"
# small inputs and few proposals/detections keep three CPU forward passes quick
FAST = ["INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=200", "TEST.DETECTIONS_PER_IMAGE=30",
        "MODEL.CENTERNET.PRE_NMS_TOPK_TEST=200", "MODEL.CENTERNET.POST_NMS_TOPK_TEST=32"]
CATEGORIES = {1: "person", 17: "cat", 18: "dog"}  # COCO ids


@pytest.fixture(scope="module")
def tiny_coco(shared_dir, tmp_path_factory, parity_crops):
    """3 crops of the parity pictures with box+polygon ground truth, and a 3-row vocabulary .npy."""
    root = tmp_path_factory.mktemp("tiny_coco")
    (root / "images").mkdir()
    gt = parity_crops(root / "images", [("astronaut", 100, 60, 1), ("chelsea", 0, 0, 17), ("chelsea", 120, 40, 18)])
    (root / "gt.json").write_text(json.dumps(gt))
    coco_ids = sorted(c["id"] for c in json.loads((shared_dir / "detic-metadata/coco_categories.json").read_text()))
    table = np.load(shared_dir / "detic-metadata/coco_clip_a+cname.npy")
    np.save(root / "vocab.npy", table[[coco_ids.index(k) for k in sorted(CATEGORIES)]])
    return root


@pytest.fixture
def eval_args(shared_dir, parity_checkpoint, tiny_coco):
    return ["--config", shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
            "--dataset", f"coco:{tiny_coco / 'gt.json'}:{tiny_coco / 'images'}", "--vocab", tiny_coco / "vocab.npy",
            "--device", "cpu", *FAST]


def test_interrupted_and_resumed_equals_one_run(run_cli, eval_args, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    code, out, err = run_cli("eval", *eval_args, "--output-dir", whole)
    assert code == 0, err
    assert "bbox/AP" in out and "segm/AP" in out
    code, _, err = run_cli("eval", *eval_args, "--output-dir", parts, "--max-images", "1")
    assert code == 0, err
    assert "2 of 3 image(s) left" in err and not (parts / "metrics.json").exists()
    assert "already done" not in err  # a new folder: nothing was skipped
    assert len(list((parts / "shards").glob("*.json"))) == 1
    code, _, err = run_cli("eval", *eval_args, "--output-dir", parts)
    assert code == 0, err
    assert "1 image(s) already done" in err
    metrics = json.loads((whole / "metrics.json").read_text())
    assert json.loads((parts / "metrics.json").read_text()) == metrics
    assert {"bbox/AP", "bbox/AP50", "segm/AP"} <= set(metrics)
    results = json.loads((whole / "results.json").read_text())
    assert results == json.loads((parts / "results.json").read_text())
    assert results and {r["category_id"] for r in results} <= set(CATEGORIES)
    assert {r["image_id"] for r in results} <= set(range(100, 103))
    assert all(len(r["bbox"]) == 4 and "counts" in r["segmentation"] for r in results)


def test_bad_input(run_cli, eval_args, tiny_coco, tmp_path):
    spec = eval_args[eval_args.index("--dataset") + 1]
    without_vocab = [a for a in eval_args if a not in ("--vocab", tiny_coco / "vocab.npy")]
    code, _, err = run_cli("eval", *without_vocab, "--output-dir", tmp_path / "o")
    assert code == 1 and "give --vocab" in err
    code, _, err = run_cli("eval", *without_vocab, "--vocab", tiny_coco / "vocab2.npy", "--output-dir", tmp_path)
    assert code == 1 and "not found" in err
    np.save(tiny_coco / "two.npy", np.load(tiny_coco / "vocab.npy")[:2])
    code, _, err = run_cli("eval", *without_vocab, "--vocab", tiny_coco / "two.npy", "--output-dir", tmp_path)
    assert code == 1 and "2 classes" in err and "3 categories" in err
    code, _, err = run_cli("eval", "--dataset", spec)
    assert code == 1 and "--row" in err
    code, _, err = run_cli("eval", "--row", "no_such_model", "--dataset", spec)
    assert code == 1 and "not in the zoo" in err


def test_onnxruntime_backend_scores_like_pytorch(run_cli, eval_args, shared_dir, parity_checkpoint, tiny_coco,
                                                 tmp_path):
    """An export with the config's evaluation settings (threshold 0.02, every class per box) evaluated with
    --backend onnxruntime gives PyTorch's results and metrics; PyTorch-only options are refused."""
    import detic_cli.cli.export  # noqa: F401  (registers `detic export`)

    onnx = tmp_path / "r18.onnx"
    code, _, err = run_cli("export", "--config", shared_dir / "detic-reference/configs" / R18, "--weights",
                           parity_checkpoint(R18), "--out", onnx, "--threshold", "0.02", "--pred-all-class",
                           "--vocab", tiny_coco / "vocab.npy", *FAST)
    assert code == 0, err
    data = ["--dataset", f"coco:{tiny_coco / 'gt.json'}:{tiny_coco / 'images'}", "--vocab", tiny_coco / "vocab.npy"]
    code, _, err = run_cli("eval", *data, "--backend", "onnxruntime", "--onnx", onnx, "--device", "cpu",
                           "--output-dir", tmp_path / "ort")
    assert code == 0, err
    assert "runs in onnxruntime with its export's settings: score threshold 0.02" in err
    code, _, err = run_cli("eval", *eval_args, "--output-dir", tmp_path / "torch")
    assert code == 0, err
    ort, torch_ = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ort", "torch"))
    assert set(ort) == set(torch_) and {"bbox/AP", "segm/AP"} <= set(ort)
    same = [(a is None and b is None) or (a is not None and b is not None and abs(a - b) < 0.05)
            for a, b in ((ort[k], torch_[k]) for k in ort)]
    assert all(same) and ort["bbox/AP"] is not None, (ort, torch_)
    fingerprint = json.loads((tmp_path / "ort/run.json").read_text())
    assert fingerprint["backend"] == "onnxruntime" and len(fingerprint["onnx_sha256"]) == 64
    for args, message in ((["--onnx", onnx, "--config", "c.yaml"], "--config: not with --onnx"),
                          ([], "needs --onnx MODEL.onnx"),
                          (["--onnx", onnx, "--amp", "fp16"], "--amp: not with --onnx")):
        code, _, err = run_cli("eval", *data, "--backend", "onnxruntime", *args, "--output-dir", tmp_path / "x")
        assert code == 1 and message in err and "Traceback" not in err, err
