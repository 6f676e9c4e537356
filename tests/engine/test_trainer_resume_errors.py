"""Resuming with another config: one line that says which tensor differs and where the run's config is."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detic_cli.engine.trainer import load_error_detail
from detic_cli.errors import DeticError
from tests.engine.test_trainer import make_trainer


def test_resume_into_another_model_names_the_tensor_and_the_config(tmp_path):
    make_trainer(tmp_path, max_iter=2, checkpoint_period=0).train()
    other = make_trainer(tmp_path / "other", max_iter=2)
    other.model.head = nn.Linear(8, 3)  # as after a different KEY=VALUE override
    with pytest.raises(DeticError) as info:
        other.resume(tmp_path / "model_final.pth")
    message = str(info.value)
    assert "\n" not in message and "(size mismatch for head.weight: copying a param with shape" in message
    assert f"they are in {tmp_path / 'config.yaml'}" in message


def test_load_error_detail_skips_the_header():
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict({"weight": torch.zeros(2, 2)})
    assert load_error_detail(info.value) == 'Missing key(s) in state_dict: "bias".'
    assert load_error_detail(KeyError("optimizer")) == "'optimizer'"
