"""The reference implementation's outputs reproduced through `detic detect`: identical, for every case.

Cases: every `*.json` in ../shared/parity/cases (the clip_* files there are not detection cases), plus the
case files, or folders of them, named in `DETIC_PARITY_CASES` (paths separated by `os.pathsep`), so held-back
cases run without editing this file. Their `image` and `vocab` paths are relative to ../shared, as in the
shared cases; `vocab: null` is a model with a learned classifier (Deformable DETR), run without `--vocab`.

Every case runs with a cold cache (an empty DETIC_HOME) and offline (`DETIC_OFFLINE=1`), and must pass
compare_detections.py's strict rule (`compare_strict`): every reference detection paired with one of the
same class, each box coordinate within 0.01 px and the score within 1e-4, nothing extra, every mask IoU >=
0.99 (a missing mask fails). Where the case records the network's intermediate values, the per-level
feature statistics agree to relative 1e-5, the proposals to 1e-3 px and their objectness logits to
relative 1e-5.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SHARED, SHARED_MISSING

CONFIGS = "detic-reference/configs"
FEATURE_RTOL = 1e-5  # per-level mean (relative to the level's std), std and first values
PROPOSAL_ATOL_PX = 1e-3
# plus float32 rounding relative to the coordinate: C4's res4 sums differ with the thread count, and its
# proposals (coordinates up to ~1200 px) moved by 1.2e-3 px at 1 thread (9.2e-4 at 2 and 4 threads)
PROPOSAL_RTOL = 2e-6
LOGIT_RTOL = 1e-5  # objectness logits reach ~100 (C4); float noise is ~4e-6 relative


def case_files() -> list[Path]:
    """The shared detection cases, then those named in DETIC_PARITY_CASES (files, or folders of `*.json`)."""
    files = sorted((SHARED / "parity/cases").glob("*.json")) if SHARED.is_dir() else []
    for entry in filter(None, os.environ.get("DETIC_PARITY_CASES", "").split(os.pathsep)):
        path = Path(entry).expanduser()
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [f for f in files if "expected" in _read(f)]


@cache
def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _params(with_intermediates: bool = False) -> list:
    """One param per case (optionally only those with intermediate feature statistics); without ../shared
    a single param skipped with the reason, never an empty, silently passing set."""
    files = [f for f in case_files() if not with_intermediates or _read(f)["expected"].get("intermediate", {})
             .get("features")]
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=SHARED_MISSING), id="no-shared")]
    return [pytest.param(f, id=f.stem) for f in files]


@cache
def _compare_module():
    spec = importlib.util.spec_from_file_location("compare_detections", SHARED / "parity/compare_detections.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_identical(case: dict, record: dict) -> None:
    """compare_detections.py's strict rule on one `detic detect --json` record."""
    result = _compare_module().compare_strict(case, record)
    assert result["identical"], f"{case['name']}: not identical to the reference: {result}"


_DETECTED: dict[Path, dict] = {}


@pytest.fixture
def detected(run_cli, parity_checkpoint, tmp_path, monkeypatch):
    """Factory: the `detic detect --json` record of a case file, run once per session with a cold cache
    (the autouse fixture's empty DETIC_HOME) and no network."""

    def run(path: Path) -> dict:
        if path not in _DETECTED:
            case = _read(path)
            monkeypatch.setenv("DETIC_OFFLINE", "1")
            out = tmp_path / f"{path.stem}.json"
            vocab = ["--vocab", SHARED / case["vocab"]] if case.get("vocab") else []
            code, _, err = run_cli(
                "detect", SHARED / case["image"], "--config", SHARED / CONFIGS / case["config"],
                "--weights", parity_checkpoint(case["config"], case["seed"]), *vocab,
                "--threshold", case["threshold"], "--device", "cpu", "--json", out,
                *(["--pred-all-class"] if case.get("pred_all_class") else []))
            assert code == 0, err
            _DETECTED[path] = json.loads(out.read_text())[0]
        return copy.deepcopy(_DETECTED[path])

    return run


@pytest.mark.parametrize("path", _params())
def test_detections_are_identical(path, detected):
    case = _read(path)
    record = detected(path)
    assert [record["height"], record["width"]] == case["expected"]["image_hw"]
    assert_identical(case, record)


@pytest.mark.parametrize("path", _params(with_intermediates=True))
def test_intermediates_match_reference(path, parity_checkpoint):
    """Network input size, FPN (or res4) statistics per level, and the first 50 proposals."""
    from detic_cli.config import load_config
    from detic_cli.data.image_io import read_image_bgr
    from detic_cli.engine.model_setup import predictor_from_config

    case = _read(path)
    predictor = predictor_from_config(load_config(SHARED / CONFIGS / case["config"]),
                                      weights=parity_checkpoint(case["config"], case["seed"]),
                                      device=torch.device("cpu"),
                                      embeddings=np.load(SHARED / case["vocab"]) if case.get("vocab") else None)
    model, expected = predictor.model, case["expected"]["intermediate"]
    images = model.preprocess_image(predictor.prepare([read_image_bgr(SHARED / case["image"])]))
    assert list(images.tensor.shape[-2:]) == expected["input_hw"]
    with torch.no_grad():
        features = model.backbone(images.tensor)
        proposals = model.proposal_generator(images, features)[0]
    for level, stats in expected["features"].items():
        f = features[level]
        assert list(f.shape) == stats["shape"], level
        assert f.mean().item() == pytest.approx(stats["mean"], abs=FEATURE_RTOL * stats["std"]), level
        assert f.std().item() == pytest.approx(stats["std"], rel=FEATURE_RTOL), level
        np.testing.assert_allclose(f.flatten()[:8].numpy(), stats["head"], rtol=FEATURE_RTOL,
                                   atol=FEATURE_RTOL * stats["std"], err_msg=level)
    ref = expected["proposals"]
    assert len(proposals) == ref["count"]
    np.testing.assert_allclose(proposals.proposal_boxes.tensor[:50].numpy(), ref["boxes"],
                               rtol=PROPOSAL_RTOL, atol=PROPOSAL_ATOL_PX)
    np.testing.assert_allclose(proposals.objectness_logits[:50].numpy(), ref["objectness_logits"],
                               rtol=LOGIT_RTOL, atol=1e-5)


def _drop_five(record: dict) -> None:
    del record["instances"][:5]


def _add_five(record: dict) -> None:
    record["instances"] += [{**copy.deepcopy(i), "box_xyxy": [b + 40.0 for b in i["box_xyxy"]], "score": 0.99}
                            for i in record["instances"][:5]]


def _lower_scores(record: dict) -> None:
    for inst in record["instances"]:
        inst["score"] -= 0.019


def _remove_masks(record: dict) -> None:
    for inst in record["instances"][1:]:
        inst.pop("mask_rle", None)


@pytest.mark.parametrize("perturb", [_drop_five, _add_five, _lower_scores, _remove_masks],
                         ids=lambda f: f.__name__.strip("_"))
def test_strict_check_rejects_perturbed_output(perturb, detected):
    """The R18 parity check fails on a copy of the real output with 5 detections dropped, 5 spurious ones
    at 0.99 added, every score lowered by 0.019, or 111 of 112 masks removed (all passed the old rule)."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_MISSING)
    path = SHARED / "parity/cases/r18_astronaut.json"
    case, record = _read(path), detected(path)
    assert len(record["instances"]) == 112
    assert_identical(case, record)
    perturb(record)
    with pytest.raises(AssertionError, match="not identical"):
        assert_identical(case, record)
