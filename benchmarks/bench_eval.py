"""Evaluation time: detic's LVIS evaluator vs lvis-api on a synthetic LVIS-shaped set.

    python benchmarks/bench_eval.py [--images 5000] [--categories 1203] [--iou-type bbox] [--skip-reference]

Prints one table: seconds, AP and the largest metric difference to lvis-api (speed is measured
here, never asserted in tests; equality is what tests/evaluation asserts).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import math
import time
from typing import Any

from detic_cli.evaluation import evaluate_results
from detic_cli.evaluation.lvis_compat import import_lvis
from detic_cli.evaluation.synthetic import synthetic_ground_truth, synthetic_results


def run_lvis_api(gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str) -> dict[str, float]:
    lvis = import_lvis()
    logging.getLogger("lvis").setLevel(logging.ERROR)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox", None)
    with contextlib.redirect_stdout(io.StringIO()):
        api = lvis.LVIS.__new__(lvis.LVIS)
        api.logger = logging.getLogger("lvis.bench")
        api.dataset = gt
        api._create_index()
        ev = lvis.LVISEval(api, lvis.LVISResults(api, results), iou_type)
        ev.run()
    return {k: float(v) * 100 for k, v in ev.results.items()}


def timed(fn, *args: Any) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def max_difference(ours: dict[str, float], ref: dict[str, float]) -> float:
    diffs = [abs(ours[k] - v) for k, v in ref.items() if v >= 0 and not math.isnan(ours[k])]
    return max(diffs, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=1203)
    parser.add_argument("--random-dets", type=int, default=150, help="most random detections per image")
    parser.add_argument("--iou-type", choices=["bbox", "segm"], default="bbox")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true", help="time only detic's evaluator")
    args = parser.parse_args()

    masks = args.iou_type == "segm"
    gt = synthetic_ground_truth(num_images=args.images, num_categories=args.categories, seed=args.seed,
                                lvis=True, masks=masks, max_anns_per_image=15)  # fmt: skip
    results = synthetic_results(gt, seed=args.seed, masks=masks, crowded_images=20, max_random=args.random_dets)
    print(f"{args.images} images, {args.categories} categories, {len(gt['annotations'])} annotations, "
          f"{len(results)} detections, iou_type={args.iou_type}")  # fmt: skip

    rows = []
    ours_s, ours = timed(evaluate_results, "lvis", gt, results, args.iou_type)
    rows.append(("detic", ours_s, ours["AP"], "-"))
    if not args.skip_reference:
        ref_s, ref = timed(run_lvis_api, copy.deepcopy(gt), copy.deepcopy(results), args.iou_type)
        rows.append(("lvis-api 0.5.3", ref_s, ref["AP"], f"{max_difference(ours, ref):.2e}"))
    print(f"{'evaluator':<16} {'seconds':>9} {'AP':>8} {'max |diff|':>11} {'speed-up':>9}")
    for name, seconds, ap, diff in rows:
        print(f"{name:<16} {seconds:9.2f} {ap:8.3f} {diff:>11} {rows[-1][1] / seconds:8.1f}x")


if __name__ == "__main__":
    main()
