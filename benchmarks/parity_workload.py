"""The side-by-side workload of ../shared/reference/speed_pair.py, this project's side only.

    python benchmarks/bench_detect.py --workload parity [--models r18,r50,cxt,swinb] [--threads 2] [--calls 6]

Per model: the config from ../shared/detic-reference/configs, the pseudo-random parity weights of
../shared/parity (seed 0), the astronaut picture, the LVIS vocabulary (1203 CLIP embeddings), threshold 0.5,
one class per proposal, float32 on the CPU with `threads` torch threads; one warm-up call, then the median
of `calls` Predictor calls (model load excluded). Its seconds sit beside speed_pair's "ours" column.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from detic_cli.config import load_config
from detic_cli.engine.model_setup import predictor_from_config

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFIGS = {"r18": "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml",
           "r50": "Detic_LCOCOI21k_CLIP_R5021k_640b32_4x_ft4x_max-size.yaml",
           "cxt": "Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size.yaml",
           "swinb": "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml",
           "c4": "BoxSup_OVCOCO_CLIP_R50_1x.yaml",
           "detr": "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"}


def parity_weights(config: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict ../shared/parity/make_checkpoint.py writes for `config` (a file name)."""
    sys.path.insert(0, str(SHARED / "parity"))
    from parity_weights import parity_state_dict

    manifests = json.loads((SHARED / "parity/manifests.json").read_text())
    return parity_state_dict(manifests[config], seed)


def time_config(config: str, *, calls: int = 6, threads: int = 2) -> tuple[float, int]:
    """(median seconds of a Predictor call, detections) for one config file name on the parity workload."""
    torch.set_num_threads(threads)
    cfg = load_config(SHARED / "detic-reference/configs" / config,
                      ["MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.5", "MODEL.ROI_HEADS.ONE_CLASS_PER_PROPOSAL=True"])
    vocab = None if "DeformDETR" in config else np.load(SHARED / "detic-metadata/lvis_v1_clip_a+cname.npy")
    names = [f"c{i}" for i in range(len(vocab))] if vocab is not None else None
    predictor = predictor_from_config(cfg, weights=parity_weights(config), device=torch.device("cpu"),
                                      embeddings=vocab, class_names=names)
    image = cv2.imread(str(SHARED / "parity/images/astronaut.jpg"))
    found = len(predictor([image])[0])  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        found = len(predictor([image])[0])
        times.append(time.perf_counter() - start)
    return statistics.median(times), found


def run(models: list[str], *, calls: int, threads: int) -> list[dict]:
    """One row per model name (keys of CONFIGS, or config file names): config, median seconds, detections
    (printed and returned)."""
    configs = {name: CONFIGS.get(name, name) for name in models}
    if not (SHARED / "parity/parity_weights.py").is_file():
        raise SystemExit(f"--workload parity needs the shared parity material at {SHARED}")
    rows = []
    for name, config in configs.items():
        seconds, found = time_config(config, calls=calls, threads=threads)
        rows.append({"model": name, "config": config, "median_s": round(seconds, 3), "detections": found,
                     "threads": threads, "calls": calls})
        print(f"{name:6s} {seconds:7.3f} s  {found:4d} detections  ({config}, {threads} threads, "
              f"median of {calls})", flush=True)
    return rows
