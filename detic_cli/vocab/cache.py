"""`DETIC_HOME/vocab`: embeddings built from class names, keyed by (names, prompt, encoder).

A second `detect --vocab "cat,dog"` with the same encoder reads `<key>.npy` and never loads CLIP.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from detic_cli.utils import detic_home
from detic_cli.vocab.sidecar import array_sha256, read_sidecar, save_vocabulary


def vocab_dir() -> Path:
    return detic_home() / "vocab"


def cache_key(names: list[str], template: str, encoder: str, synonyms: list[list[str]] | None = None) -> str:
    """sha256 hex over the exact inputs that decide the embeddings."""
    blob = json.dumps({"names": names, "prompt": template, "encoder": encoder, "synonyms": synonyms},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def load_cached(key: str) -> np.ndarray | None:
    """The cached (C x D) float32 array, or None when absent or damaged (it is then rebuilt)."""
    npy = vocab_dir() / f"{key}.npy"
    if not npy.is_file():
        return None
    try:
        array = np.load(npy, allow_pickle=False)
        side = read_sidecar(npy)
    except Exception:
        return None
    if side is None or side.get("sha256") != array_sha256(array) or array.ndim != 2:
        return None
    return array.astype(np.float32, copy=False)


def store_cached(key: str, embeddings: np.ndarray, meta: dict) -> None:
    """Save float32 embeddings + sidecar under the key (atomic; a failure to cache is not fatal)."""
    try:
        save_vocabulary(vocab_dir() / f"{key}.npy", embeddings, meta, dtype="float32")
    except OSError:
        pass
