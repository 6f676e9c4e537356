"""Built-in vocabularies from a mirror folder of the original metadata files (no network)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from detic_cli.errors import DeticError
from detic_cli.utils import sha256_file
from detic_cli.vocab.builtin import BUILTINS, builtin_vocabulary, fetch_builtin_vocabulary, is_builtin
from detic_cli.zoo import cache


@pytest.fixture
def metadata(shared_dir):
    return shared_dir / "detic-metadata"


def test_recorded_hashes_and_sizes_match_the_public_files(metadata):
    for vocab in BUILTINS.values():
        for asset in vocab.assets():
            path = metadata / asset.filename
            assert (asset.sha256, asset.size) == (sha256_file(path), path.stat().st_size), asset.filename


@pytest.mark.parametrize("name,npy,count,first", [
    ("lvis", "lvis_v1_clip_a+cname.npy", 1203, "aerosol_can"),
    ("o365", "o365_clip_a+cnamefix.npy", 365, "Person"),
    ("oid", "oid_clip_a+cname.npy", 500, "Infant bed"),
    ("coco", "coco_clip_a+cname.npy", 80, "person"),
])
def test_fetch_from_mirror_folder(metadata, name, npy, count, first):
    names, emb = fetch_builtin_vocabulary(name, mirror=str(metadata))
    assert len(names) == count and names[0] == first and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, np.load(metadata / npy).astype(np.float32))
    asset = builtin_vocabulary(name).embeddings
    assert cache.cached_path(asset).is_file() and cache.read_record(asset).sha256 == asset.sha256


def test_names_in_classifier_order(metadata):
    assert fetch_builtin_vocabulary("coco", mirror=str(metadata))[0] == [
        c["name"] for c in json.loads((metadata / "coco_categories.json").read_text())]
    assert fetch_builtin_vocabulary("openimages", mirror=str(metadata))[0] == [
        c["name"] for c in json.loads((metadata / "oid_v4_categories.json").read_text())]
    o365 = fetch_builtin_vocabulary("objects365", mirror=str(metadata))[0]
    rows = list(csv.reader(open(metadata / "Objects365_names_fix.csv")))
    assert o365[37] == "Monitor/TV" == rows[37][2]  # the fixed spelling, not "Moniter/TV"
    lvis = fetch_builtin_vocabulary("lvis", mirror=str(metadata))[0]
    cats = json.loads((metadata / "lvis_v1_train_cat_info.json").read_text())
    assert lvis == [c["name"] for c in sorted(cats, key=lambda c: c["id"])]


def test_offline_cold_cache_names_the_missing_file(monkeypatch):
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    monkeypatch.delenv("DETIC_ZOO_MIRROR", raising=False)
    with pytest.raises(DeticError, match="offline .*lvis_v1_clip_a\\+cname.npy is not in the cache"):
        fetch_builtin_vocabulary("lvis")


def test_aliases_and_unknown_names():
    assert builtin_vocabulary("O365").name == "objects365" and builtin_vocabulary("oid").name == "openimages"
    assert is_builtin("coco") and not is_builtin("cat,dog")
    with pytest.raises(DeticError, match="did you mean lvis"):
        builtin_vocabulary("lvsi")


def test_a_corrupt_cached_vocabulary_is_fetched_again_or_named_offline(metadata, monkeypatch):
    fetch_builtin_vocabulary("coco", mirror=str(metadata))
    asset = builtin_vocabulary("coco").embeddings
    path = cache.cached_path(asset)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    monkeypatch.delenv("DETIC_ZOO_MIRROR", raising=False)
    with pytest.raises(DeticError, match="coco_clip_a\\+cname.npy is corrupt in the cache"):
        fetch_builtin_vocabulary("coco")
    emb = fetch_builtin_vocabulary("coco", mirror=str(metadata))[1]  # a mirror folder works offline
    np.testing.assert_array_equal(emb, np.load(metadata / "coco_clip_a+cname.npy").astype(np.float32))
    assert sha256_file(path) == asset.sha256
