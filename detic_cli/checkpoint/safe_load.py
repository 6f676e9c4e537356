"""Read checkpoint files without running code: torch weights-only unpickling or safetensors."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from detic_cli.errors import DeticError, brief


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The top-level object of a `.pth`/`.pt` (weights-only) or `.safetensors` file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise DeticError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise DeticError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        with warnings.catch_warnings():  # torch's advice on weights_only=False is not for our users
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DeticError(f"{path}: refused to load: the file holds objects other than tensors and plain "
                         f"containers ({brief(exc)}); only weights-only checkpoints are loaded") from exc
    except Exception as exc:  # any other failure of the reader means the bytes are not a checkpoint
        raise DeticError(f"{path}: not a readable PyTorch checkpoint (empty, truncated or corrupt: "
                         f"{brief(exc)})") from exc
    if not isinstance(obj, dict):
        raise DeticError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return obj


def model_state_dict(obj: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint (`{"model": ...}`) or a plain one."""
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DeticError(f"{source}: no state dict of tensors found (expected {{'model': state_dict}})")
    return state
