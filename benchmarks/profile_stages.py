"""Per-stage time of one Predictor call on the parity workload (see parity_workload.py), and torch.profiler's
operator table.

    python benchmarks/profile_stages.py [--models r18] [--calls 3] [--threads 2] [--cpu-time] [--ops 20]

Stages are timed with forward hooks on the model's parts (backbone, FPN, CenterNet head, each cascade
stage's box head and predictor, the poolers, the mask head) and a wrapper on the post-processing; the median
of `calls` calls after a warm-up. `--cpu-time` reports process CPU seconds instead of wall seconds (steadier
on a shared machine; both threads count). Stages nest: "backbone + FPN" includes "backbone (bottom-up)".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
from parity_workload import CONFIGS, SHARED, parity_weights
from torch import nn

import detic_cli.modeling.meta_arch as meta_arch
from detic_cli.config import load_config
from detic_cli.engine.model_setup import predictor_from_config


def stage_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The timed parts of a CenterNet2 cascade model or a C4 (RPN + res5 heads) model, by label."""
    heads = model.roi_heads
    if hasattr(heads, "res5"):
        return {"backbone (res2-res4)": model.backbone, "proposals (RPN, all)": model.proposal_generator,
                "RPN head convs": model.proposal_generator.rpn_head, "ROI heads (all)": heads,
                "box predictor (1000 proposals)": heads.box_predictor}
    parts = {"backbone (bottom-up)": model.backbone.bottom_up, "backbone + FPN": model.backbone,
             "proposals (all)": model.proposal_generator,
             "proposals: CenterNet head convs": model.proposal_generator.centernet_head,
             "box ROIAlign (3 stages)": heads.box_pooler}
    for k in range(len(heads.box_head)):
        parts[f"box head stage {k}"] = heads.box_head[k]
        parts[f"box predictor stage {k}"] = heads.box_predictor[k]
    parts.update({"ROI heads (all)": heads, "mask ROIAlign": heads.mask_pooler, "mask head": heads.mask_head})
    return parts


def instrument(model: nn.Module, clock: Callable[[], float], totals: dict[str, float]) -> None:
    """Add each stage's time per call into `totals` (hooks on the modules, a wrapper on post-processing)."""
    for label, module in stage_modules(model).items():
        start: dict[str, float] = {}
        module.register_forward_pre_hook(lambda *_, s=start: s.__setitem__("t", clock()))
        module.register_forward_hook(
            lambda *_, s=start, key=label: totals.__setitem__(key, totals.get(key, 0.0) + clock() - s["t"]))
    postprocess = meta_arch.detector_postprocess

    def timed_postprocess(*args, **kwargs):
        t = clock()
        out = postprocess(*args, **kwargs)
        key = "postprocess (boxes + mask paste)"
        totals[key] = totals.get(key, 0.0) + clock() - t
        return out

    meta_arch.detector_postprocess = timed_postprocess
    heads = model.roi_heads
    if hasattr(heads, "res5"):  # C4: pooling + res5 is a method (the folded res5 runs without its modules)
        for key, name in (("ROI pooling + res5", "box_features"), ("per-class NMS (fast_rcnn_inference)", None)):
            owner, attr = (heads, name) if name else (sys.modules[type(heads).__module__], "fast_rcnn_inference")
            setattr(owner, attr, _timed(getattr(owner, attr), key, clock, totals))


def _timed(fn: Callable, key: str, clock: Callable[[], float], totals: dict[str, float]) -> Callable:
    def wrapper(*args, **kwargs):
        t = clock()
        out = fn(*args, **kwargs)
        totals[key] = totals.get(key, 0.0) + clock() - t
        return out
    return wrapper


def profile(config: str, *, calls: int, threads: int, cpu_time: bool, ops: int) -> dict[str, float]:
    """Median seconds per stage of `calls` Predictor calls; prints them (and `ops` operator rows if > 0)."""
    torch.set_num_threads(threads)
    cfg = load_config(SHARED / "detic-reference/configs" / config,
                      ["MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.5", "MODEL.ROI_HEADS.ONE_CLASS_PER_PROPOSAL=True"])
    vocab = np.load(SHARED / "detic-metadata/lvis_v1_clip_a+cname.npy")
    predictor = predictor_from_config(cfg, weights=parity_weights(config), device=torch.device("cpu"),
                                      embeddings=vocab, class_names=[f"c{i}" for i in range(len(vocab))])
    image = cv2.imread(str(SHARED / "parity/images/astronaut.jpg"))
    clock = time.process_time if cpu_time else time.perf_counter
    totals: dict[str, float] = {}
    instrument(predictor.model, clock, totals)
    predictor([image])
    rows = []
    for _ in range(calls):
        totals.clear()
        start = clock()
        predictor([image])
        totals["TOTAL (predictor call)"] = clock() - start
        rows.append(dict(totals))
    median = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    print(f"{config} ({'CPU' if cpu_time else 'wall'} seconds, median of {calls}, {threads} threads)")
    for key, seconds in median.items():
        print(f"  {key:40s} {seconds:8.3f}")
    if ops > 0:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            predictor([image])
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=ops))
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="r18", help=f"comma-separated: {', '.join(CONFIGS)} (CenterNet2 and c4)")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true")
    parser.add_argument("--ops", type=int, default=0, help="also print this many torch.profiler operator rows")
    args = parser.parse_args()
    for name in args.models.split(","):
        profile(CONFIGS.get(name, name), calls=args.calls, threads=args.threads, cpu_time=args.cpu_time,
                ops=args.ops)


if __name__ == "__main__":
    main()
