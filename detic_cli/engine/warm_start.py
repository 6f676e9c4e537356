"""Initial weights for training: a detector-format checkpoint loaded where it fits, the rest reported.

Starting from a converted backbone leaves the FPN and heads to their random init ("missing"); a
checkpoint of another recipe may carry tensors this model lacks ("unexpected") or of another shape
("mismatched", left at random init like detectron2 does). Buffers the model derives itself (class
embeddings, index tables, BN counters) are neither loaded nor reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detic_cli.checkpoint.load import is_derived
from detic_cli.checkpoint.safe_load import model_state_dict, read_checkpoint
from detic_cli.errors import DeticError


@dataclass
class InitReport:
    """What `load_init_weights` did, for the one-paragraph report the command prints."""

    source: str
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self, limit: int = 3) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")

        parts = [f"{self.loaded} tensors loaded"]
        if self.missing:
            parts.append(f"{len(self.missing)} left to random init: {few(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unused: {few(self.unexpected)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} of another shape, left to random init: {few(self.mismatched)}")
        return f"{self.source}: " + "; ".join(parts)


def load_init_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Copy the tensors of the checkpoint at `path` (`{"model": state_dict}` or a plain state dict, .pth
    read weights-only or .safetensors) that fit `model`; a file sharing no tensor with it is an error."""
    state = strip_prefix(model_state_dict(read_checkpoint(path), str(path)), "module.")
    expected = {k: v for k, v in model.state_dict().items() if not is_derived(k)}
    given = {k: v for k, v in state.items() if not is_derived(k)}
    report = InitReport(source=str(path))
    fitting: dict[str, torch.Tensor] = {}
    for key, value in given.items():
        if key not in expected:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(expected[key].shape):
            report.mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}")
        else:
            fitting[key] = value
    if not fitting:
        raise DeticError(f"{path}: no tensor fits this model (expected detector keys such as "
                         f"{next(iter(expected), '?')}); convert a backbone first with `detic convert-pretrained`")
    model.load_state_dict(fitting, strict=False)
    report.loaded = len(fitting)
    report.missing = sorted(set(expected) - set(fitting) - {m.split(" ")[0] for m in report.mismatched})
    report.unexpected.sort()
    return report


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The keys without `prefix` when every key has it (a model saved inside DistributedDataParallel), as
    detectron2's checkpointer does; otherwise `state` unchanged."""
    if not state or not all(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix):]: v for k, v in state.items()}
