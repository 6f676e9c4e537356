"""engine/train_eval.py: evaluation during training leaves the model being trained as it found it."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.engine.train_eval import training_state_kept


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)
        self.head.register_buffer("zs_weight", torch.ones(2, 3), persistent=False)
        self.class_names = ["a", "b"]


def test_vocabulary_buffers_names_and_mode_come_back():
    model = _Toy().train()
    buffer, weight = model.head.zs_weight, model.head.weight
    with training_state_kept(model):
        model.eval()
        model.head.zs_weight = torch.zeros(2, 5)  # a test vocabulary of 4 classes
        model.class_names = ["x", "y", "z", "w"]
        assert not model.head.training
    assert model.head.zs_weight is buffer and model.head.weight is weight
    assert model.training and model.head.training and model.class_names == ["a", "b"]
