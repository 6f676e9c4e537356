"""A vocabulary on disk: `NAME.npy` (C x D) and the sidecar `NAME.json` describing it.

Sidecar fields: `names` (C strings, row order), `prompt` (template with `{}`), `encoder` (id of the
CLIP text tower), `dimension` (D), `count` (C), `dtype`, `sha256` (of the array's bytes as stored,
C order, little-endian, i.e. `hashlib.sha256(np.load(NAME.npy).tobytes())`), plus free-form extras.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from detic_cli import __version__
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_write_bytes


def array_sha256(array: np.ndarray) -> str:
    """sha256 hex of the array's bytes in C order (little-endian as numpy stores them)."""
    return hashlib.sha256(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def sidecar_path(npy: str | Path) -> Path:
    """`x/NAME.npy` -> `x/NAME.json`."""
    return Path(npy).with_suffix(".json")


def npy_bytes(array: np.ndarray) -> bytes:
    """The `.npy` file content of `array`."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save_vocabulary(out: str | Path, embeddings: np.ndarray, meta: dict, dtype: str = "float32") -> dict:
    """Write `out` (.npy, C x D in `dtype`) and its sidecar; return the sidecar dict.

    `meta` must hold `names`, `prompt` and `encoder`; other keys are stored as given.
    """
    out = Path(out).expanduser()
    if out.suffix != ".npy":
        raise DeticError(f"--out {out}: the file name must end with .npy")
    if dtype not in ("float32", "float16"):
        raise DeticError(f"--dtype {dtype}: expected float32 or float16")
    array = np.ascontiguousarray(embeddings, dtype=np.dtype(dtype))
    if len(meta["names"]) != array.shape[0]:
        raise ValueError(f"{len(meta['names'])} names for {array.shape[0]} rows")
    side = {**meta, "dimension": int(array.shape[1]), "count": int(array.shape[0]), "dtype": dtype,
            "sha256": array_sha256(array), "detic_version": __version__}
    atomic_write_bytes(out, npy_bytes(array))
    atomic_write_bytes(sidecar_path(out), (json.dumps(side, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return side


def read_sidecar(npy: str | Path) -> dict | None:
    """The sidecar dict next to `npy`, or None when there is none. Malformed -> DeticError."""
    path = sidecar_path(npy)
    if not path.is_file():
        return None
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeticError(f"{path}: not a valid vocabulary sidecar JSON ({exc}); fix or delete it") from exc
    if not isinstance(side, dict) or not isinstance(side.get("names"), list):
        raise DeticError(f"{path}: the sidecar has no 'names' list; fix or delete it")
    return side
