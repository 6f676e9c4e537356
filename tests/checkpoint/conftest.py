"""Shared helpers for the checkpoint tests: detectors built once per session, randomised batch norms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from detic_cli.config import load_config
from detic_cli.modeling.builders import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def detector():
    """Factory: the eval-mode detector of a config under configs/, built once per session."""
    built: dict[tuple[str, ...], nn.Module] = {}

    def make(name: str, *overrides: str) -> nn.Module:
        if (name, *overrides) not in built:
            torch.manual_seed(0)
            built[(name, *overrides)] = build_model(load_config(CONFIGS / name, list(overrides))).eval()
        return built[(name, *overrides)]

    return make


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, so that a wrong mapping shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()
