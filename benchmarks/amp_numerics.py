"""Speed and strict-rule agreement of the numerics paths (float32, `--amp bf16`, `--amp fp16`) on the parity cases.

    python benchmarks/amp_numerics.py [--amp off,bf16] [--case r18_astronaut] [--calls 4] [--threads 2]
        [--cases-dir EXTRA_DIR]

For each case of ../shared/parity/cases (and EXTRA_DIR, as DETIC_PARITY_CASES): the make_checkpoint.py weights of
its config and seed, its picture, vocabulary and threshold, run through `Detector` on the CPU with each `--amp`
word; prints the median seconds of `calls` calls after one warm-up, and `compare_detections.py`'s verdicts
against the reference's detections: the strict rule (0.01 px, 1e-4 score, mask IoU 0.99) and the loose one
(recall / precision / mask IoU). The CPU's bf16 support decides whether bf16 pays (`torch.backends.cpu.
get_cpu_capability()` and the flags avx512_bf16 / amx_bf16 in /proc/cpuinfo are printed first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch
from parity_noise import load_compare, make_weights  # benchmarks/ is on sys.path when run as a script

from detic_cli import Detector
from detic_cli.data.image_io import read_image_bgr

SHARED = Path(__file__).resolve().parents[2] / "shared"


def cpu_bf16_flags() -> str:
    """The bf16-related CPU flags of /proc/cpuinfo ("none" if it lists none, "unknown" without that file)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in flags.split() if "bf16" in f or f.startswith("amx")]
    return ",".join(found) or "none"


def time_case(case: dict, amp: str, *, calls: int, folder: Path) -> tuple[float, dict]:
    """(median seconds of a call, the first call's detect --json record) of one case with one --amp word."""
    weights = make_weights(SHARED, case["config"], case["seed"], folder)
    vocab = str(SHARED / case["vocab"]) if case.get("vocab") else None  # None: a closed-vocabulary model
    detector = Detector(config=SHARED / "detic-reference/configs" / case["config"], weights=weights, vocab=vocab,
                        device="cpu", threshold=case["threshold"], amp=amp,
                        pred_all_class=case.get("pred_all_class", False))
    image = read_image_bgr(SHARED / case["image"])
    record = detector(image).to_dict()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        detector(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times), record


def report(case: dict, amp: str, seconds: float, record: dict, compare: ModuleType) -> str:
    strict = compare.compare_strict(case, record)
    loose = compare.compare(case, record)
    verdict = "identical" if strict["identical"] else "NOT identical"
    iou = "-" if loose["mask_iou"] is None else f"{loose['mask_iou']:.3f}"
    return (f"{case['name']:24s} {amp:5s} {seconds:8.3f} s  strict: {verdict} ({strict['paired']} paired of "
            f"{strict['reference']} / {strict['predicted']} predicted, {strict['max_box_diff_px']:.1e} px)  "
            f"loose: recall {loose['recall']:.3f} precision {loose['precision']:.3f} mask IoU {iou}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", default="off,bf16", help="comma-separated --amp words (off, bf16, fp16)")
    parser.add_argument("--case", action="append", help="case name (default: every case)")
    parser.add_argument("--cases-dir", type=Path, action="append", default=[], help="more case folders")
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 flags: {cpu_bf16_flags()}", flush=True)
    paths = sorted((SHARED / "parity/cases").glob("*.json"))
    for folder in args.cases_dir:
        paths += sorted(folder.glob("*.json"))
    cases = [json.loads(p.read_text()) for p in paths]
    cases = [c for c in cases if "expected" in c and (not args.case or c["name"] in args.case)]
    compare = load_compare(SHARED)
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            for amp in args.amp.split(","):
                seconds, record = time_case(case, amp, calls=args.calls, folder=Path(folder))
                print(report(case, amp, seconds, record, compare), flush=True)


if __name__ == "__main__":
    main()
