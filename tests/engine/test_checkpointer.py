"""Training checkpoints: atomic writes, weights-only reading, random states, official model layout."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from detic_cli.engine.checkpointer import (
    capture_rng,
    checkpoint_name,
    last_checkpoint,
    load_checkpoint_file,
    restore_rng,
    save_checkpoint,
)
from detic_cli.errors import DeticError


def _state(model, optimizer, iteration=4):
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": {"base_lrs": [0.1],
            "last_iter": iteration + 1}, "scaler": torch.amp.GradScaler("cpu").state_dict(), "iteration": iteration,
            "data": {"batches": iteration + 1, "world_size": 1, "seed": 3}, "rng": [capture_rng()]}


@pytest.fixture
def trained():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()  # AdamW state: step counters and moments
    return model, optimizer


def test_saved_state_reads_back_weights_only(tmp_path, trained):
    model, optimizer = trained
    path = save_checkpoint(tmp_path, checkpoint_name(4), _state(model, optimizer))
    assert path.name == "model_0000004.pth" and last_checkpoint(tmp_path) == path
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no custom classes inside
    assert raw["iteration"] == 4 and raw["data"]["seed"] == 3
    assert all(torch.equal(raw["model"][k], v) for k, v in model.state_dict().items())
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(load_checkpoint_file(path)["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert {p.name for p in tmp_path.iterdir()} == {path.name, "last_checkpoint"}


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, trained):
    model, optimizer = trained
    good = save_checkpoint(tmp_path, "model_final.pth", _state(model, optimizer))
    before = good.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails inside torch.save
        save_checkpoint(tmp_path, "model_final.pth", {"model": {}, "iteration": 0, "bad": lambda: 0})
    assert good.read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} == {"model_final.pth", "last_checkpoint"}  # no temp left


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    state = capture_rng()
    first = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(state)
    assert (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


def test_bad_files_are_one_line_errors(tmp_path):
    assert last_checkpoint(tmp_path) is None
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    with pytest.raises(DeticError, match="does not exist"):
        last_checkpoint(tmp_path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DeticError, match="not a readable training checkpoint"):
        load_checkpoint_file(tmp_path / "junk.pth")
    torch.save({"model": {}, "iteration": 1, "evil": random.Random(0)}, tmp_path / "unsafe.pth")
    with pytest.raises(DeticError, match="not a readable training checkpoint") as info:
        load_checkpoint_file(tmp_path / "unsafe.pth")
    assert "\n" not in str(info.value)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pth")
    with pytest.raises(DeticError, match="not a training checkpoint"):
        load_checkpoint_file(tmp_path / "plain.pth")


def test_model_part_loads_as_an_official_checkpoint(tmp_path, shared_dir):
    from detic_cli.checkpoint.load import load_checkpoint
    from detic_cli.config import load_config
    from detic_cli.modeling.builders import build_model

    cfg = load_config(shared_dir / "detic-reference/configs/Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_checkpoint(tmp_path, "model_final.pth", _state(model, optimizer))
    torch.manual_seed(1)
    other = build_model(cfg)
    load_checkpoint(other, path)  # strict about every learned key: the detect/eval loader
    key = "roi_heads.box_predictor.0.bbox_pred.2.weight"
    assert torch.equal(other.state_dict()[key], model.state_dict()[key])
