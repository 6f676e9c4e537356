"""Initial weights for training: tensors that fit are loaded, the rest reported (detectron2's checkpointer)."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.engine.warm_start import load_init_weights, strip_prefix


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


def test_checkpoint_saved_inside_ddp_loads_without_its_module_prefix(tmp_path):
    source = Small()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"model": state}, tmp_path / "ddp.pth")
    target = Small()
    report = load_init_weights(target, tmp_path / "ddp.pth")
    assert report.loaded == 4 and not report.missing and not report.unexpected
    assert torch.equal(target.head.weight, source.head.weight)


def test_prefix_is_kept_unless_every_key_has_it():
    mixed = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert strip_prefix(mixed, "module.") is mixed
    assert list(strip_prefix({"module.a": torch.zeros(1)}, "module.")) == ["a"]


def test_shape_mismatch_and_missing_heads_are_reported(tmp_path):
    source = Small()
    state = dict(source.state_dict())
    state["head.weight"] = torch.zeros(5, 4)
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "init.pth")
    target = Small()
    report = load_init_weights(target, tmp_path / "init.pth")
    assert report.loaded == 2 and report.unexpected == ["extra.weight"]
    assert report.missing == ["head.bias"] and report.mismatched == ["head.weight (5, 4) vs (2, 4)"]
    assert torch.equal(target.backbone.weight, source.backbone.weight)
