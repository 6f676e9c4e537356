"""The reference tools run directly (lvis-api through the NumPy shim, pycocotools), as detectron2 calls them."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detic_cli.evaluation.lvis_compat import import_lvis

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR@1", "AR@10", "AR@100", "ARs@100", "ARm@100", "ARl@100")


def _without_boxes_for_masks(results: list[dict[str, Any]], iou_type: str) -> list[dict[str, Any]]:
    results = copy.deepcopy(results)
    if iou_type == "segm":  # detectron2 drops boxes so that areas are mask areas
        for r in results:
            r.pop("bbox", None)
    return results


def run_lvis_api(gt: dict, results: list[dict], iou_type: str, max_dets: int = 300) -> dict[str, float]:
    lvis = import_lvis()
    logging.getLogger("lvis").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        api = lvis.LVIS.__new__(lvis.LVIS)
        api.logger = logging.getLogger("lvis.test")
        api.dataset = copy.deepcopy(gt)
        api._create_index()
        dt = lvis.LVISResults(api, _without_boxes_for_masks(results, iou_type), max_dets=max_dets)
        ev = lvis.LVISEval(api, dt, iou_type)
        if max_dets < 0:
            ev.params.max_dets = -1
        ev.run()
    return {k: float(v) * 100 for k, v in ev.results.items()}


def run_cocoeval(gt: dict, results: list[dict], iou_type: str) -> tuple[dict[str, float], COCOeval]:
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = copy.deepcopy(gt)
        api.createIndex()
        dt = api.loadRes(_without_boxes_for_masks(results, iou_type))
        ev = COCOeval(api, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(COCO_KEYS, (float(s) * 100 for s in ev.stats))), ev


def assert_same(ours: dict[str, float], ref: dict[str, float], tol: float = 1e-4) -> None:
    assert set(ref) <= set(ours), set(ref) - set(ours)
    for key, value in ref.items():
        if value < 0:  # the reference's "no ground truth" -1 (x100) is our NaN
            assert np.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(value, abs=tol), key


@pytest.fixture
def lvis_api():
    return run_lvis_api


@pytest.fixture
def cocoeval():
    return run_cocoeval


@pytest.fixture
def same():
    return assert_same
