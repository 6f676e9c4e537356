"""Training checkpoints: written atomically, read back weights-only, enough state to resume exactly.

A checkpoint is one `torch.save`d dict of tensors and plain Python values (so `torch.load(...,
weights_only=True)` reads it):
- "model": the detector's state dict in the official key layout (`detic detect --weights` loads it);
- "optimizer", "scheduler", "scaler" (None without fp16 loss scaling): their `state_dict()`s;
- "iteration": the 0-based index of the last finished iteration (detectron2's convention, so the file
  written after 5000 iterations is `model_0004999.pth` and holds 4999);
- "data": where the training data stands ({"batches": batches consumed per process, "world_size", "seed"});
- "rng": one entry per process rank: {"python": int64 (625,), "numpy": int64 (624,), "numpy_pos",
  "torch": uint8 CPU generator state, "cuda": uint8 state of the process's current CUDA device or None}.
`last_checkpoint` (a text file) names the newest checkpoint of the folder.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detic_cli.errors import DeticError
from detic_cli.utils import atomic_path, atomic_write_bytes

LAST = "last_checkpoint"


def checkpoint_name(iteration: int) -> str:
    """`model_0004999.pth` for the checkpoint written after iteration 4999 (0-based)."""
    return f"model_{iteration:07d}.pth"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary file beside `path`, flushed to disk, then renamed over it."""
    with atomic_path(path, fsync=True) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(output_dir: Path, name: str, state: dict[str, Any]) -> Path:
    """Write `state` to `output_dir/name` and point `last_checkpoint` at it."""
    path = Path(output_dir) / name
    atomic_torch_save(state, path)
    atomic_write_bytes(Path(output_dir) / LAST, name.encode())
    return path


def last_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint `last_checkpoint` names, or None when the folder has none."""
    marker = Path(output_dir) / LAST
    if not marker.is_file():
        return None
    path = Path(output_dir) / marker.read_text().strip()
    if not path.is_file():
        raise DeticError(f"{marker}: names {path.name}, which does not exist; delete {marker} to start over")
    return path


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """A training checkpoint, read weights-only onto the CPU."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DeticError(f"{path}: not a readable training checkpoint ({first})") from exc
    if not isinstance(obj, dict) or "model" not in obj or "iteration" not in obj:
        raise DeticError(f"{path}: not a training checkpoint (no model/iteration entries)")
    return obj


def capture_rng() -> dict[str, Any]:
    """This process's python, numpy, torch (and current CUDA device) random states as tensors."""
    _, py_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return {"python": torch.tensor(py_state, dtype=torch.int64), "python_gauss": gauss,
            "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": int(pos),
            "numpy_gauss": [int(has_gauss), float(cached)], "torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the states `capture_rng` returned."""
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
