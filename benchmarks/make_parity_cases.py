"""Make more detection parity cases with the original Detic rebuilt by ../shared/reference (see its README).

    REF_ROOT=/tmp/ref python benchmarks/make_parity_cases.py OUT_DIR [--only NAME,...] [--all-configs]
    DETIC_PARITY_CASES=OUT_DIR pytest tests/parity

Each case runs `../shared/reference/parity_ref.py` (the original's demo path on the parity weights) on one
config, picture, vocabulary and threshold, and writes `OUT_DIR/NAME.json` in the format of
`../shared/parity/cases/*.json`, which `tests/parity` and `compare_detections.py` read. The set below covers
the families and vocabularies the shared cases do not (Objects365, COCO with all classes, OID, C4 on LVIS,
Deformable DETR). `--all-configs` makes one case per config of ../shared/parity/manifests.json instead (28:
threshold 0.3, the LVIS vocabulary, COCO's for the OVCOCO configs, none for Deformable DETR, astronaut and
chelsea in turn). Masks that come out empty on both sides fail `compare_detections.py`'s strict rule
(pycocotools gives two empty masks IoU 0): such cases fail for the reference itself, so they are reported and
not written unless `--keep-empty-masks`; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"

# name: (config, picture, vocabulary under ../shared or None, threshold, one box per class)
CASES: dict[str, tuple[str, str, str | None, float, bool]] = {
    "r5021k_chelsea_o365": ("Detic_LCOCOI21k_CLIP_R5021k_640b32_4x_ft4x_max-size.yaml", "chelsea.jpg",
                            "detic-metadata/o365_clip_a+cnamefix.npy", 0.3, False),
    "cxt_chelsea_coco_all": ("Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size.yaml", "chelsea.jpg",
                             "detic-metadata/coco_clip_a+cname.npy", 0.3, True),
    "c4_astronaut_lvis": ("Detic_OVCOCO_CLIP_R50_1x_max-size.yaml", "astronaut.jpg",
                          "detic-metadata/lvis_v1_clip_a+cname.npy", 0.3, False),
    "detr_chelsea": ("BoxSup-DeformDETR_L_R50_4x.yaml", "chelsea.jpg", None, 0.3, False),
    "swinb_astronaut_oid": ("Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml", "astronaut.jpg",
                            "detic-metadata/oid_clip_a+cname.npy", 0.3, False),
}


def all_config_cases() -> dict[str, tuple[str, str, str | None, float, bool]]:
    """One case per config of the parity manifests, named after the config."""
    configs = json.loads((SHARED / "parity/manifests.json").read_text())
    cases = {}
    for i, config in enumerate(configs):
        if "OVCOCO" in config:
            vocab: str | None = "detic-metadata/coco_clip_a+cname.npy"
        elif "DeformDETR" in config:
            vocab = None
        else:
            vocab = "detic-metadata/lvis_v1_clip_a+cname.npy"
        cases[config.removesuffix(".yaml")] = (config, ("astronaut.jpg", "chelsea.jpg")[i % 2], vocab, 0.3, False)
    return cases


def empty_masks(reference: dict) -> int:
    """How many of the reference's masks are empty (0 pixels)."""
    from pycocotools import mask as mask_util

    rles = [{**r, "counts": r["counts"].encode()} for r in reference.get("masks_rle", [])]
    return int(sum(mask_util.area(rle) == 0 for rle in rles))


EXPECTED_KEYS = ("image_hw", "min_size_test", "max_size_test", "boxes", "scores", "classes", "intermediate")


def run_reference(ref_root: Path, name: str, spec: tuple, out: Path) -> dict:
    """The original's output (parity_ref.py's JSON) for one case."""
    config, picture, vocab, threshold, all_classes = spec
    command = [str(ref_root / "venv/bin/python"), str(SHARED / "reference/parity_ref.py"), "--config", config,
               "--seed", "0", "--image", str(SHARED / "parity/images" / picture),
               "--vocab", str(SHARED / vocab) if vocab else "none", "--thresh", str(threshold), "--out", str(out)]
    if all_classes:
        command.append("--pred-all-class")
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "REF_ROOT": str(ref_root)})
    if done.returncode != 0:
        raise SystemExit(f"{name}: parity_ref.py failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.read_text())


def as_case(name: str, spec: tuple, reference: dict) -> dict:
    config, picture, vocab, threshold, all_classes = spec
    expected = {k: reference[k] for k in EXPECTED_KEYS if k in reference}
    if "masks_rle" in reference:
        expected["masks_rle"] = reference["masks_rle"]
    return {"name": name, "config": config, "seed": 0, "image": f"parity/images/{picture}", "vocab": vocab,
            "threshold": threshold, "pred_all_class": all_classes, "expected": expected,
            "note": "made with shared/reference/parity_ref.py by benchmarks/make_parity_cases.py"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--all-configs", action="store_true", help="one case per config of the manifests")
    parser.add_argument("--keep-empty-masks", action="store_true",
                        help="write cases whose reference has empty masks too (they cannot pass the strict rule)")
    args = parser.parse_args()
    ref_root = Path(os.environ.get("REF_ROOT", Path(tempfile.gettempdir()) / "ref"))
    if not (ref_root / "venv/bin/python").exists():
        sys.exit(f"REF_ROOT={ref_root}: no rebuilt original there (run ../shared/reference/rebuild.sh first)")
    cases = all_config_cases() if args.all_configs else CASES
    names = [n for n in args.only.split(",") if n] or list(cases)
    if unknown := [n for n in names if n not in cases]:
        sys.exit(f"--only: unknown case {unknown[0]!r} (known: {', '.join(cases)})")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            reference = run_reference(ref_root, name, cases[name], Path(tmp) / "ref.json")
        if (empty := empty_masks(reference)) and not args.keep_empty_masks:
            print(f"{name}: not written: {empty} of the reference's masks are empty, and compare_detections.py "
                  "gives two empty masks IoU 0 (use --keep-empty-masks to write it anyway)")
            continue
        target = args.out_dir / f"{name}.json"
        partial = target.with_suffix(".json.part")
        partial.write_text(json.dumps(as_case(name, cases[name], reference)))
        partial.replace(target)
        print(f"{name}: {len(reference['scores'])} detections -> {target}")


if __name__ == "__main__":
    main()
