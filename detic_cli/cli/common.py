"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import torch

from detic_cli.errors import DeticError


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeticError(f"--device {device}: no CUDA device is available; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeticError(f"--device {device}: expected auto, cpu or cuda[:N]")
    return torch.device(device)
