"""A/B of the fused backbone convolutions (`layers/fused_conv.py`) on the parity workload, in one process.

    .venv/bin/python benchmarks/fused_backbone.py --models r18,r50,c4 [--rounds 5] [--threads 2] [--whole]

Per model: the parity weights, the astronaut picture's network input (as `parity_workload.py`), then backbone
(+ FPN) calls alternating the variants call by call for `--rounds` rounds: `base` (the modules' own forward)
and `fused` (the ResNet's fused inference form; the FPN convolutions stay as they are: packing them measured
no gain, benchmarks/README.md).
Prints min / median seconds after two warm-up rounds (the first call at an input size builds the snapshot
and runs the plain weights, the second packs them: `first` and `second` are those calls' seconds) and the
worst change of each output level (max |diff| over the level's std, and the parity test's checks as a
fraction of their 1e-5 tolerance). `--whole` also alternates whole Predictor calls with the fused forms off
and on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch
from parity_workload import CONFIGS, SHARED, parity_weights

from detic_cli.config import load_config
from detic_cli.engine.model_setup import predictor_from_config
from detic_cli.layers.fused_conv import use_fused_convolutions
from detic_cli.modeling.backbone.fpn import FPN

TOL = 1e-5


def _set(model: torch.nn.Module, *, fused: bool) -> None:
    use_fused_convolutions(model, fused)


def _parity_fraction(out: torch.Tensor, ref: torch.Tensor) -> float:
    """The worst of the parity test's checks (mean, std, first 8 values) as a fraction of the tolerance."""
    std = ref.std().item()
    mean = abs(out.mean().item() - ref.mean().item()) / (TOL * std)
    spread = abs(out.std().item() - std) / (TOL * std)
    head = ((out.flatten()[:8] - ref.flatten()[:8]).abs() / (TOL * std + TOL * ref.flatten()[:8].abs())).max()
    return max(mean, spread, head.item())


def _predictor(name: str, threads: int):
    torch.set_num_threads(threads)
    config = CONFIGS[name]
    cfg = load_config(SHARED / "detic-reference/configs" / config,
                      ["MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.5", "MODEL.ROI_HEADS.ONE_CLASS_PER_PROPOSAL=True"])
    vocab = None if "DeformDETR" in config else np.load(SHARED / "detic-metadata/lvis_v1_clip_a+cname.npy")
    return predictor_from_config(cfg, weights=parity_weights(config), device=torch.device("cpu"), embeddings=vocab)


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_backbone(name: str, rounds: int, threads: int) -> None:
    predictor = _predictor(name, threads)
    model = predictor.model
    image = cv2.imread(str(SHARED / "parity/images/astronaut.jpg"))
    x = model.preprocess_image(predictor.prepare([image])).tensor
    variants = {"base": False, "fused": True}
    times: dict[str, list[float]] = {v: [] for v in variants}
    outs: dict[str, dict] = {}
    warm: dict[str, list[float]] = {v: [] for v in variants}
    with torch.no_grad():
        for r in range(rounds + 2):
            for v, fused in variants.items():
                _set(model, fused=fused)
                seconds, outs[v] = _timed(lambda: model.backbone(x))
                (times[v] if r >= 2 else warm[v]).append(seconds)
    ref = outs["base"]
    what = "backbone + FPN" if isinstance(model.backbone, FPN) else "backbone"
    print(f"{name}: {what} on {tuple(x.shape)}, {threads} threads")
    base_min = min(times["base"])
    for v, ts in times.items():
        moved = max(((outs[v][k] - ref[k]).abs().max() / ref[k].std()).item() for k in ref)
        parity = max(_parity_fraction(outs[v][k], ref[k]) for k in ref)
        print(f"  {v:7s} min {min(ts):.3f} med {statistics.median(ts):.3f} ({base_min / min(ts):.2f}x)"
              f"  first {warm[v][0]:.3f} second {warm[v][1]:.3f}  max|d|/std {moved:.1e}  parity/tol {parity:.2f}")


def bench_whole(name: str, rounds: int, threads: int) -> None:
    predictor = _predictor(name, threads)
    image = cv2.imread(str(SHARED / "parity/images/astronaut.jpg"))
    times: dict[str, list[float]] = {"base": [], "fused": []}
    for r in range(rounds + 2):
        for v in times:
            _set(predictor.model, fused=v == "fused")
            seconds, found = _timed(lambda: len(predictor([image])[0]))
            if r >= 2:
                times[v].append(seconds)
    print(f"{name}: whole Predictor call, {found} detections")
    for v, ts in times.items():
        print(f"  {v:7s} min {min(ts):.3f} med {statistics.median(ts):.3f}"
              f" ({min(times['base']) / min(ts):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="r18,r50,c4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--whole", action="store_true")
    args = parser.parse_args()
    for name in args.models.split(","):
        bench_backbone(name, args.rounds, args.threads)
        if args.whole:
            bench_whole(name, args.rounds, args.threads)


if __name__ == "__main__":
    main()
