"""Small shared helpers with no project dependencies: device choice and atomic file writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from detic_cli.errors import DeticError


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda[:N]` without a GPU is a DeticError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeticError(f"--device {device}: no CUDA device is available; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeticError(f"--device {device}: expected auto, cpu or cuda[:N]")
    return torch.device(device)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it (readers never see half a file).

    The file ends up readable by everyone (0644), not private like the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
