"""The one way checkpoint files are read into tensors and written back, for `detic convert-pretrained`,
`detic zoo pull` and everything else that converts weights.

Reading never runs code: `.pkl`/`.pickle` go through the restricted unpickler (`legacy_pickle`), anything
else through torch's weights-only loader or safetensors (`safe_load`). Every container a released file
comes in is unwrapped the same way: `{"model" | "state_dict" | "blobs" | "model_state" | "module": ...}`
(the first that holds a dict), a `module.` key prefix (DataParallel), caffe2 `_momentum` blobs dropped,
numeric numpy arrays turned into tensors. Writing is atomic (temp file in the folder, then rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from detic_cli.checkpoint.legacy_pickle import read_legacy_pickle
from detic_cli.checkpoint.safe_load import read_checkpoint
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_path

PICKLE_SUFFIXES = (".pkl", ".pickle")
WRITE_SUFFIXES = (".pth", ".safetensors")
WRAPPERS = ("model", "state_dict", "blobs", "model_state", "module")


def read_object(path: str | Path) -> dict[str, Any]:
    """The top-level dict of a checkpoint file: a legacy pickle, a weights-only `.pth`/`.pt` or safetensors."""
    path = Path(path)
    return read_legacy_pickle(path) if path.suffix in PICKLE_SUFFIXES else read_checkpoint(path)


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(np.ascontiguousarray(value))
    return None


def unwrap_state_dict(obj: dict[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The tensors of a loaded checkpoint, whatever container holds them (see the module docstring)."""
    obj = next((obj[name] for name in WRAPPERS if isinstance(obj.get(name), dict)), obj)
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        tensor = _as_tensor(value)
        if tensor is not None and not str(key).endswith("_momentum"):
            state[str(key).removeprefix("module.")] = tensor
    if not state:
        raise DeticError(f"{source}: no tensors found (expected a state dict, {{'model': ...}} or {{'blobs': ...}})")
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint file at `path`, unwrapped."""
    return unwrap_state_dict(read_object(path), str(path))


def write_checkpoint(state: dict[str, torch.Tensor], dst: Path) -> None:
    """Write `.pth` as {"model": state} or `.safetensors`, atomically (temp file in the folder + rename)."""
    if dst.suffix not in WRITE_SUFFIXES:
        raise DeticError(f"{dst}: the output must end in .pth or .safetensors")
    with atomic_path(dst) as tmp:
        if dst.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(tmp))
        else:
            torch.save({"model": state}, tmp)
