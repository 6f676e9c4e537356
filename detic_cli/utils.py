"""Small shared helpers with no project dependencies: device choice, cache home, hashing, atomic writes.

Importing this module stays cheap (torch is imported only by `resolve_device`): the zoo and the
vocabulary cache use it in processes that never touch a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from detic_cli.errors import DeticError, brief

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda[:N]` without a GPU is a DeticError."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeticError(f"--device {device}: no CUDA device is available; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeticError(f"--device {device}: expected auto, cpu or cuda[:N]")
    return torch.device(device)


@contextmanager
def atomic_path(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write; when the block ends without an exception it becomes
    `path` (readable by everyone, 0644, flushed to disk first with `fsync`), otherwise it is removed.
    Readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`data` into `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def detic_home() -> Path:
    """`$DETIC_HOME`, else the user cache directory (`~/.cache/detic` on Linux)."""
    env = os.environ.get("DETIC_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("detic"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in `chunk`-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def remembered_sha256(path: str | Path) -> str:
    """sha256 hex of a file, remembered in `DETIC_HOME/vocab/file-hashes.json` by (path, size, mtime)
    so that a large checkpoint is hashed once, not on every run."""
    path = Path(path).expanduser().resolve()
    st = path.stat()
    stamp = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_path = detic_home() / "vocab" / "file-hashes.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    if isinstance(index, dict) and isinstance(index.get(stamp), str):
        return index[stamp]
    index = index if isinstance(index, dict) else {}
    index[stamp] = sha256_file(path, chunk=1 << 22)
    try:
        atomic_write_bytes(index_path, json.dumps(index, indent=1).encode("utf-8"))
    except OSError:
        pass
    return index[stamp]


def read_json(path: str | Path) -> Any:
    """The parsed content of the JSON file `path`; a missing or malformed file is a one-line DeticError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise DeticError(f"{path}: file not found") from exc
    except (OSError, ValueError) as exc:
        raise DeticError(f"{path}: not a readable json file ({brief(exc)})") from exc


def read_dataset_json(path: str | Path, *, keys: tuple[str, ...] = ("images", "categories")) -> dict[str, Any]:
    """A COCO/LVIS-style json object holding list fields `keys`."""
    data = read_json(path)
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in keys):
        raise DeticError(f"{path}: expected a COCO/LVIS json object with {', '.join(repr(k) for k in keys)} lists")
    return data
