"""How far float32 rounding alone moves the parity cases' detections.

    python benchmarks/parity_noise.py [--shared ../shared] [--case c4_chelsea] [--threads 1 2 16]

For each case in SHARED/parity/cases, runs the engine on the make_checkpoint.py weights several
times with equally valid float32 arithmetic (torch thread counts, oneDNN convolutions on and off)
and prints compare_detections.py's recall/precision of every run against the reference and
against the other runs. A case whose runs fail against each other cannot be matched by IoU by any
implementation that is not bit-identical to the machine that wrote the reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from detic_cli.data.image_io import read_image_bgr
from detic_cli.engine.model_setup import detect_config, predictor_from_config
from detic_cli.engine.predictor import Predictor


def load_compare(shared: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_detections", shared / "parity/compare_detections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_weights(shared: Path, config: str, seed: int, folder: Path) -> Path:
    out = folder / f"{Path(config).stem}_{seed}.pth"
    subprocess.run([sys.executable, str(shared / "parity/make_checkpoint.py"), "detector", config, "--seed",
                    str(seed), "--out", str(out)], check=True, capture_output=True)
    return out


def detections(predictor: Predictor, image: np.ndarray, threads: int, onednn: bool) -> dict:
    """One compare_detections record (boxes in original pixels) under the given float32 arithmetic."""
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = onednn
    out = predictor([image])[0]
    return {"instances": [{"box_xyxy": b.tolist(), "score": float(s), "class_index": int(c)} for b, s, c in
                          zip(out.pred_boxes.tensor.double(), out.scores, out.pred_classes)]}


def as_case(record: dict) -> dict:
    found = record["instances"]
    return {"expected": {"boxes": [d["box_xyxy"] for d in found], "scores": [d["score"] for d in found],
                         "classes": [d["class_index"] for d in found]}}


def run_case(shared: Path, case: dict, threads: list[int], folder: Path) -> None:
    compare = load_compare(shared)
    cfg = detect_config(shared / "detic-reference/configs" / case["config"], [], case["threshold"],
                         case["pred_all_class"])
    predictor = predictor_from_config(cfg, weights=make_weights(shared, case["config"], case["seed"], folder),
                                      device=torch.device("cpu"), embeddings=np.load(shared / case["vocab"]))
    image = read_image_bgr(shared / "parity" / case["image"].split("parity/")[-1])
    settings = [(t, True) for t in threads] + [(threads[0], False)]
    runs = {f"threads={t} onednn={'on' if o else 'off'}": detections(predictor, image, t, o) for t, o in settings}
    print(f"{case['name']}: against the reference")
    for name, record in runs.items():
        r = compare.compare(case, record)
        print(f"  {name:24s} recall {r['recall']:.3f} precision {r['precision']:.3f}")
    print(f"{case['name']}: runs against each other")
    for a, b in itertools.combinations(runs, 2):
        r = compare.compare(as_case(runs[a]), runs[b])
        print(f"  {a:24s} vs {b:24s} recall {r['recall']:.3f} precision {r['precision']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--case", action="append", help="case name (default: every case)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 16])
    args = parser.parse_args()
    paths = sorted((args.shared / "parity/cases").glob("*.json"))
    cases = [json.loads(p.read_text()) for p in paths]
    cases = [c for c in cases if "expected" in c and (not args.case or c["name"] in args.case)]
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            run_case(args.shared, case, args.threads, Path(folder))


if __name__ == "__main__":
    main()
