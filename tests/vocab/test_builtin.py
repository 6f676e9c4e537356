"""Built-in vocabularies: names from the package, embeddings from a mirror folder of the original files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from detic_cli.errors import DeticError
from detic_cli.utils import sha256_file
from detic_cli.vocab.builtin import (
    BUILTINS,
    all_vocab_assets,
    builtin_class_names,
    builtin_vocabulary,
    fetch_builtin_vocabulary,
    is_builtin,
    pull_builtin_vocabulary,
)
from detic_cli.zoo import cache


@pytest.fixture
def metadata(shared_dir):
    return shared_dir / "detic-metadata"


def _offline(monkeypatch):
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    monkeypatch.delenv("DETIC_ZOO_MIRROR", raising=False)


def test_recorded_hashes_and_sizes_match_the_public_files(metadata):
    assets = all_vocab_assets()
    assert len(assets) == 7  # 4 embedding files, 3 public names files (COCO's has no public URL)
    for asset in assets:
        path = metadata / asset.filename
        assert (asset.sha256, asset.size) == (sha256_file(path), path.stat().st_size), asset.filename
    for vocab in BUILTINS.values():
        array = np.load(metadata / vocab.embeddings.filename)
        assert (array.shape, array.dtype.name) == (vocab.embedding_shape, vocab.embedding_dtype)
        assert array.shape[0] == vocab.num_classes == len(builtin_class_names(vocab.name))


@pytest.mark.parametrize("name,npy,count,first", [
    ("lvis", "lvis_v1_clip_a+cname.npy", 1203, "aerosol_can"),
    ("o365", "o365_clip_a+cnamefix.npy", 365, "Person"),
    ("oid", "oid_clip_a+cname.npy", 500, "Infant bed"),
    ("coco", "coco_clip_a+cname.npy", 80, "person"),
])
def test_fetch_from_mirror_folder_downloads_only_the_embeddings(metadata, name, npy, count, first):
    names, emb = fetch_builtin_vocabulary(name, mirror=str(metadata))
    assert len(names) == count and names[0] == first and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, np.load(metadata / npy).astype(np.float32))
    asset = builtin_vocabulary(name).embeddings
    assert cache.cached_path(asset).is_file() and cache.read_record(asset).sha256 == asset.sha256
    cached = {p.name for p in cache.cached_path(asset).parent.iterdir()}
    assert cached == {npy, cache.record_path(asset).name}  # the file and its download record, no names file


def test_names_in_classifier_order(metadata):
    assert builtin_class_names("coco") == [
        c["name"] for c in json.loads((metadata / "coco_categories.json").read_text())]
    assert builtin_class_names("openimages") == [
        c["name"] for c in json.loads((metadata / "oid_v4_categories.json").read_text())]
    o365 = builtin_class_names("objects365")
    rows = list(csv.reader(open(metadata / "Objects365_names_fix.csv")))
    assert o365[37] == "Monitor/TV" == rows[37][2]  # the fixed spelling, not "Moniter/TV"
    cats = json.loads((metadata / "lvis_v1_train_cat_info.json").read_text())
    assert builtin_class_names("lvis_v1") == [c["name"] for c in sorted(cats, key=lambda c: c["id"])]


def test_offline_cold_cache_is_one_line_naming_the_file_and_the_pull_command(monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(DeticError) as info:
        fetch_builtin_vocabulary("objects365")
    message = str(info.value)
    assert "\n" not in message
    assert "o365_clip_a+cnamefix.npy is not in the cache" in message
    assert "detic zoo pull --vocab objects365 --mirror DIR" in message
    assert builtin_class_names("objects365")[0] == "Person"  # the names themselves need nothing


def test_unreachable_host_is_one_line_naming_the_file(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DETIC_OFFLINE", raising=False)
    mirror = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
    with pytest.raises(DeticError) as info:
        pull_builtin_vocabulary("coco", mirror=mirror)
    message = str(info.value)
    assert "\n" not in message and message.startswith("--vocab coco: coco_clip_a+cname.npy is not in the cache")
    assert "cannot reach 127.0.0.1:9" in message and "detic zoo pull --vocab coco --mirror DIR" in message


def test_the_suggested_pull_command_works_offline(metadata, run_cli, monkeypatch):
    _offline(monkeypatch)
    code, _, err = run_cli("zoo", "pull", "--vocab", "lvis", "--mirror", "/nonexistent-mirror")
    assert code == 1 and "no such folder" in err
    code, out, err = run_cli("zoo", "pull", "--vocab", "lvis", "--mirror", metadata)
    assert code == 0, err
    assert "lvis_v1_clip_a+cname.npy" in out and "lvis_v1_train_cat_info.json" not in out
    names, emb = fetch_builtin_vocabulary("lvis")  # now from the cache, offline, no mirror
    assert len(names) == emb.shape[0] == 1203


def test_aliases_and_unknown_names():
    assert builtin_vocabulary("O365").name == "objects365" and builtin_vocabulary("oid").name == "openimages"
    assert is_builtin("coco") and is_builtin("LVIS_v1") and not is_builtin("cat,dog")
    with pytest.raises(DeticError, match="did you mean lvis"):
        builtin_vocabulary("lvsi")


def test_a_corrupt_cached_vocabulary_is_fetched_again_or_named_offline(metadata, monkeypatch):
    fetch_builtin_vocabulary("coco", mirror=str(metadata))
    asset = builtin_vocabulary("coco").embeddings
    path = cache.cached_path(asset)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    _offline(monkeypatch)
    with pytest.raises(DeticError, match="coco_clip_a\\+cname.npy is corrupt in the cache.*zoo pull --vocab coco"):
        fetch_builtin_vocabulary("coco")
    emb = fetch_builtin_vocabulary("coco", mirror=str(metadata))[1]  # a mirror folder works offline
    np.testing.assert_array_equal(emb, np.load(metadata / "coco_clip_a+cname.npy").astype(np.float32))
    assert sha256_file(path) == asset.sha256
