"""The CUDA paths: parity of `detic detect` on the GPU and a few mixed-precision training steps.

Marked `gpu`: they run where a CUDA device is present and are skipped elsewhere (tests/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

CONFIGS = "detic-reference/configs"
PROJECT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("amp", ["off", "fp16"])
def test_r18_astronaut_on_cuda_matches_reference(shared_dir, parity_checkpoint, run_cli, tmp_path, amp):
    """fp32 as the original demo; fp16 backbone (Detic's FP16) stays within the loose rule too.

    Loose on purpose (compare_detections.py's `compare`, not `compare_strict`): the reference is the
    float32 CPU run, and a GPU computes differently (cuDNN picks other convolution algorithms and, by
    default, TF32 for convolutions; fp16 rounds the backbone to 11 bits). No deviation has been measured
    yet: no session so far was lent a GPU. Measure it where one is, and record it here.
    """
    import importlib.util

    case = json.loads((shared_dir / "parity/cases/r18_astronaut.json").read_text())
    out = tmp_path / "out.json"
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--config",
                           shared_dir / CONFIGS / case["config"], "--weights",
                           parity_checkpoint(case["config"], case["seed"]), "--vocab", shared_dir / case["vocab"],
                           "--threshold", case["threshold"], "--device", "cuda", "--json", out, "--amp", amp)
    assert code == 0, err
    spec = importlib.util.spec_from_file_location("compare_detections", shared_dir / "parity/compare_detections.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    result = compare.compare(case, json.loads(out.read_text())[0])
    assert result["recall"] >= 0.95 and result["precision"] >= 0.95, result
    assert result["mask_iou"] >= 0.9, result


@pytest.mark.parametrize("amp", ["fp16", "bf16", "off"])
def test_r18_trains_on_cuda_with_mixed_precision(run_cli, tmp_path, amp):
    from detic_cli.data.synthetic import make_detection_dataset

    ann = make_detection_dataset(tmp_path / "data", num_images=4, size=128, seed=0, style="lvis")
    classes = len(json.loads(ann.read_text())["categories"])
    np.save(tmp_path / "vocab.npy", np.random.default_rng(0).standard_normal((classes, 512)).astype("float32"))
    out = tmp_path / "out"
    code, _, err = run_cli(
        "train", "--config", PROJECT_CONFIGS / "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml", "--output-dir", out,
        "--max-iter", "3", "--log-period", "1", "--device", "cuda", "--amp", amp,
        f'DATASETS.TRAIN=("lvis:{ann}:{ann.parent / "images"}",)', f"MODEL.ROI_HEADS.NUM_CLASSES={classes}",
        f"MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_PATH={tmp_path / 'vocab.npy'}", "MODEL.TIMM.PRETRAINED=False",
        "MODEL.ROI_BOX_HEAD.USE_FED_LOSS=False", "SOLVER.IMS_PER_BATCH=2", "INPUT.TRAIN_SIZE=128",
        "DATALOADER.NUM_WORKERS=0", "SOLVER.WARMUP_ITERS=1")
    assert code == 0, err
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    lines = [line for line in lines if "total_loss" in line]
    assert [line["iteration"] for line in lines][-1] >= 2
    for line in lines:
        assert np.isfinite(line["total_loss"]) and line["max_mem_mb"] > 0
    assert (out / "model_0000002.pth").is_file()
