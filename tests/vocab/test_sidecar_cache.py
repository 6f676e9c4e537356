"""Vocabulary files (.npy + sidecar) and the DETIC_HOME cache."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from detic_cli.errors import DeticError
from detic_cli.vocab import cache
from detic_cli.vocab.sidecar import array_sha256, read_sidecar, save_vocabulary


def test_save_writes_array_and_sidecar(tmp_path):
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    side = save_vocabulary(tmp_path / "v.npy", emb, {"names": ["a", "猫"], "prompt": "a {}", "encoder": "e"},
                           dtype="float16")
    arr = np.load(tmp_path / "v.npy")
    assert arr.dtype == np.float16 and arr.shape == (2, 3)
    on_disk = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    assert on_disk == side and on_disk["names"] == ["a", "猫"]
    assert on_disk["sha256"] == hashlib.sha256(arr.tobytes()).hexdigest() == array_sha256(arr)
    assert (on_disk["dimension"], on_disk["count"], on_disk["dtype"]) == (3, 2, "float16")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_save_rejects_bad_output(tmp_path):
    meta = {"names": ["a"], "prompt": "{}", "encoder": "e"}
    with pytest.raises(DeticError, match=r"\.npy"):
        save_vocabulary(tmp_path / "v.txt", np.zeros((1, 2)), meta)
    with pytest.raises(DeticError, match="float32 or float16"):
        save_vocabulary(tmp_path / "v.npy", np.zeros((1, 2)), meta, dtype="int8")


def test_read_sidecar(tmp_path):
    assert read_sidecar(tmp_path / "none.npy") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DeticError, match="sidecar"):
        read_sidecar(tmp_path / "bad.npy")


def test_detic_home_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_HOME", str(tmp_path))
    assert cache.vocab_dir() == tmp_path / "vocab"


def test_cache_key_depends_on_every_input():
    base = cache.cache_key(["cat"], "a {}", "enc")
    assert base == cache.cache_key(["cat"], "a {}", "enc")
    others = {cache.cache_key(["Cat"], "a {}", "enc"), cache.cache_key(["cat"], "{}", "enc"),
              cache.cache_key(["cat"], "a {}", "enc2"), cache.cache_key(["cat"], "a {}", "enc", [["cat"]])}
    assert base not in others and len(others) == 4


def test_cache_round_trip_and_damage():
    emb = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    key = cache.cache_key(["a", "b"], "a {}", "enc")
    assert cache.load_cached(key) is None
    cache.store_cached(key, emb, {"names": ["a", "b"], "prompt": "a {}", "encoder": "enc"})
    np.testing.assert_array_equal(cache.load_cached(key), emb)
    np.save(cache.vocab_dir() / f"{key}.npy", emb * 2)  # contents no longer match the sidecar hash
    assert cache.load_cached(key) is None
