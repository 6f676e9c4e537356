"""`--vocab SPEC` resolution: built-ins, .npy files, class names (CLIP, cached)."""

from __future__ import annotations

import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from detic_cli.clip import encoder as clip_encoder
from detic_cli.errors import DeticError
from detic_cli.utils import sha256_file
from detic_cli.vocab.resolve import Vocabulary, resolve_vocabulary
from detic_cli.zoo import cache


def _no_clip(*_args, **_kwargs):
    raise AssertionError("CLIP was loaded although the vocabulary is cached")


def test_names_are_encoded_then_cached(parity_clip, monkeypatch):
    first = resolve_vocabulary("cat, dog", clip_checkpoint=str(parity_clip))
    assert isinstance(first, Vocabulary) and first.names == ["cat", "dog"]
    assert first.embeddings.shape == (2, 512) and first.embeddings.dtype == np.float32
    monkeypatch.setattr(clip_encoder, "_LOADED", {})
    monkeypatch.setattr(clip_encoder, "load_encoder", _no_clip)
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


@pytest.fixture
def embedding_server(shared_dir, tmp_path):
    """A 127.0.0.1 HTTP server holding the real coco_clip_a+cname.npy; yields (base URL, requested paths)."""
    (tmp_path / "coco_clip_a+cname.npy").write_bytes((shared_dir / "detic-metadata/coco_clip_a+cname.npy").read_bytes())
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def do_GET(self):  # noqa: N802 - http.server's naming
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format, *args):  # noqa: A002 - silence the access log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_builtin_is_fetched_lazily_once_and_verified(embedding_server, monkeypatch):
    from detic_cli.vocab.builtin import builtin_vocabulary

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # plain HTTP to the local server
    base, requests = embedding_server
    asset = builtin_vocabulary("coco").embeddings
    assert requests == [] and not cache.cached_path(asset).exists()  # importing and looking up fetch nothing
    vocab = resolve_vocabulary("COCO", mirror=base)
    assert requests == ["/coco_clip_a%2Bcname.npy"]
    assert sha256_file(cache.cached_path(asset)) == asset.sha256
    assert vocab.names[:3] == ["person", "bicycle", "car"] and vocab.source == "builtin:coco"
    assert vocab.embeddings.shape == (80, 512) and vocab.embeddings.dtype == np.float32
    again = resolve_vocabulary("coco", mirror=base)
    assert requests == ["/coco_clip_a%2Bcname.npy"]  # the second use reads the cache
    np.testing.assert_array_equal(again.embeddings, vocab.embeddings)
