"""`--vocab SPEC` resolution: built-ins, .npy files, class names (CLIP, cached)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from detic_cli.errors import DeticError
from detic_cli.vocab import build
from detic_cli.vocab.resolve import Vocabulary, resolve_vocabulary


def _no_clip(*_args, **_kwargs):
    raise AssertionError("CLIP was loaded although the vocabulary is cached")


def test_names_are_encoded_then_cached(parity_clip, monkeypatch):
    first = resolve_vocabulary("cat, dog", clip_checkpoint=str(parity_clip))
    assert isinstance(first, Vocabulary) and first.names == ["cat", "dog"]
    assert first.embeddings.shape == (2, 512) and first.embeddings.dtype == np.float32
    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "load_encoder", _no_clip)
    second = resolve_vocabulary("cat,dog", clip_checkpoint=str(parity_clip))
    np.testing.assert_array_equal(first.embeddings, second.embeddings)


def test_duplicates_and_empty_entries(parity_clip, capsys):
    vocab = resolve_vocabulary("cat,,Cat, dog", clip_checkpoint=str(parity_clip))
    assert vocab.names == ["cat", "dog"]
    err = capsys.readouterr().err
    assert "empty" in err and "duplicate" in err


@pytest.mark.parametrize("spec", ["", " ", ",,,"])
def test_no_names_is_an_error(spec):
    with pytest.raises(DeticError, match="--vocab"):
        resolve_vocabulary(spec)


def test_vocab_file(parity_clip, tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("cat\ndog\n", encoding="utf-8")
    vocab = resolve_vocabulary("", vocab_file=str(f), clip_checkpoint=str(parity_clip))
    assert vocab.names == ["cat", "dog"] and vocab.source.startswith("names-file:")
    with pytest.raises(DeticError, match="only one"):
        resolve_vocabulary("cat", vocab_file=str(f))


def test_npy_with_names_file_sidecar_or_generic(tmp_path):
    emb = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float16)
    np.save(tmp_path / "v.npy", emb)
    vocab = resolve_vocabulary(str(tmp_path / "v.npy"))
    assert vocab.names == ["class_0", "class_1", "class_2"] and vocab.embeddings.dtype == np.float32
    (tmp_path / "v.json").write_text(json.dumps({"names": ["a", "b", "c"]}))
    assert resolve_vocabulary(str(tmp_path / "v.npy")).names == ["a", "b", "c"]
    (tmp_path / "n.txt").write_text("x\ny\nz\n")
    assert resolve_vocabulary(str(tmp_path / "v.npy"), names_file=str(tmp_path / "n.txt")).names == ["x", "y", "z"]
    (tmp_path / "n.txt").write_text("x\ny\n")
    with pytest.raises(DeticError, match="2 names for 3 rows"):
        resolve_vocabulary(str(tmp_path / "v.npy"), names_file=str(tmp_path / "n.txt"))


@pytest.mark.parametrize("array", [np.zeros(5), np.zeros((2, 3, 4)), np.zeros((0, 4)), np.array([["a"]])])
def test_npy_wrong_shape_or_type(tmp_path, array):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DeticError, match="bad.npy"):
        resolve_vocabulary(str(tmp_path / "bad.npy"))


def test_npy_without_rows_says_so(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 512), np.float32))
    with pytest.raises(DeticError, match=r"empty.npy: has no classes \(shape \(0, 512\)\)"):
        resolve_vocabulary(str(tmp_path / "empty.npy"))


def test_other_file_points_to_vocab_file(tmp_path):
    (tmp_path / "classes.txt").write_text("cat\n")
    with pytest.raises(DeticError, match="--vocab-file"):
        resolve_vocabulary(str(tmp_path / "classes.txt"))


def test_npy_missing(tmp_path):
    with pytest.raises(DeticError, match="file not found"):
        resolve_vocabulary(str(tmp_path / "missing.npy"))


def test_builtin_is_fetched_lazily(monkeypatch):
    calls = []

    def fetch(name, *, mirror=None):
        calls.append((name, mirror))
        return ["person", "bicycle"], np.ones((2, 512), dtype=np.float16)

    monkeypatch.setitem(sys.modules, "detic_cli.vocab.builtin",
                        types.SimpleNamespace(fetch_builtin_vocabulary=fetch))
    vocab = resolve_vocabulary("COCO", mirror="/mirror")
    assert calls == [("coco", "/mirror")]
    assert vocab.names == ["person", "bicycle"] and vocab.embeddings.dtype == np.float32
    assert vocab.source == "builtin:coco"
