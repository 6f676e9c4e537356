"""Every original Detic config builds, takes its official-layout checkpoint exactly, and detects."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from detic_cli.checkpoint.load import is_derived
from detic_cli.config import load_config
from detic_cli.data.image_io import read_image_bgr
from detic_cli.data.transforms import resize_image
from detic_cli.engine.model_setup import predictor_from_config
from tests.conftest import SHARED, shared_params

MANIFESTS = json.loads((SHARED / "parity/manifests.json").read_text()) if SHARED.is_dir() else {}
HEAVY = ("SwinB", "DeformDETR")


def _parity_weights():
    spec = importlib.util.spec_from_file_location("parity_weights", SHARED / "parity/parity_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LAST_WEIGHTS: dict[str, dict] = {}  # the state dict of the last manifest (configs that share one run in a row)


def _manifest_key(name: str) -> str:
    return json.dumps(MANIFESTS[name])  # in key order: parity_state_dict draws in that order


def _weights(name: str) -> dict:
    """parity_state_dict(manifest, seed=0): the same keys and shapes give the same tensors, so it is made once
    per run of configs sharing a manifest; each config gets its own copies of the tensors."""
    key = _manifest_key(name)
    if key not in _LAST_WEIGHTS:
        _LAST_WEIGHTS.clear()
        _LAST_WEIGHTS[key] = _parity_weights().parity_state_dict(MANIFESTS[name], seed=0)
    return {k: v.clone() for k, v in _LAST_WEIGHTS[key].items()}


def _params():
    for name in sorted(MANIFESTS, key=lambda n: (_manifest_key(n), n)):  # configs sharing a manifest together
        marks = [pytest.mark.slow] if any(h in name for h in HEAVY) else []
        yield pytest.param(name, marks=marks, id=name.removesuffix(".yaml"))


@pytest.mark.parametrize("config_name", shared_params(_params()))
def test_config_builds_loads_and_detects(config_name, shared_dir):
    cfg = load_config(shared_dir / "detic-reference/configs" / config_name,
                      ["INPUT.MIN_SIZE_TEST=160", "INPUT.MAX_SIZE_TEST=256", "MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.0",
                       "MODEL.RPN.POST_NMS_TOPK_TEST=100"])  # C4: 100 proposals through Res5, not 1000
    manifest = MANIFESTS[config_name]
    learned = {k: tuple(v) for k, v in manifest.items() if not is_derived(k)}
    vocab = None
    if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN":
        vocab = np.load(shared_dir / "detic-metadata/coco_clip_a+cname.npy")
    predictor = predictor_from_config(cfg, weights=_weights(config_name),
                                      device=torch.device("cpu"), embeddings=vocab)
    ours = {k: tuple(v.shape) for k, v in predictor.model.state_dict().items() if not is_derived(k)}
    assert ours == learned
    image = resize_image(read_image_bgr(shared_dir / "parity/images/chelsea.jpg"), (150, 226))
    result = predictor([image])[0]
    assert len(result) > 0
    if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN":  # Deformable DETR, like the original, does not clip
        assert result.pred_boxes.tensor[:, 2].max() <= 226 and result.pred_boxes.tensor[:, 3].max() <= 150
    assert torch.isfinite(result.scores).all() and (result.scores <= 1).all()
    assert int(result.pred_classes.max()) < (80 if cfg.MODEL.META_ARCHITECTURE == "CustomRCNN" else 1203)
    assert result.has("pred_masks") == cfg.MODEL.MASK_ON
