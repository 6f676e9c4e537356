"""Synthetic raw datasets in their public layouts, and a mirror folder standing in for the public
metadata hosts (the real small files from ../shared where their sha256 is pinned, synthetic
equivalents elsewhere). Nothing touches the network."""

from __future__ import annotations

import copy
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from detic_cli.progress import NullProgress

# LVIS v1 ids of real categories used below.
LVIS = {"aerosol_can": 1, "airplane": 3, "bat_(animal)": 64, "cow": 80, "bicycle": 94, "cat": 225, "dog": 378,
        "person": 793, "sausage": 916, "ski": 964, "applesauce": 13}
# WordNet offsets: synset name, lemmas, sense lists of the first lemma (nltk numbering).
WORDNET = {
    2691156: ("airplane", ("airplane", "aeroplane", "plane"), [2691156]),
    2682922: ("aerosol", ("aerosol", "aerosol_container", "aerosol_can", "spray_can"), [14867858, 2682922]),
    4475: ("organism", ("organism", "being"), [4475, 9999999]),
    5787: ("benthos", ("benthos",), [8888888, 5787]),
    7777777: ("zzz_not_listed", ("zzz_not_listed",), [7777777]),
}
COCO_SYNSETS = {1: "person.n.01", 2: "bicycle.n.01", 17: "cat.n.01", 18: "dog.n.01", 21: "beef.n.01",
                35: "ski.n.01", 58: "frank.n.02", 5: "airplane.n.01"}


def jpeg_bytes(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG")
    return buffer.getvalue()


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def wordnet_zip(path: Path) -> Path:
    """A WordNet-database-shaped zip (licence lines, data.noun, index.noun) with the synsets above."""
    data = ["  1 This software and database is being provided to you, the LICENSEE, by Princeton University"]
    index = ["  1 This software and database is being provided to you"]
    for offset, (lemma, lemmas, senses) in sorted(WORDNET.items()):
        words = " ".join(f"{w} 0" for w in lemmas)
        data.append(f"{offset:08d} 03 n {len(lemmas):02x} {words} 001 @ 00001740 n 0000 | "
                    f'a {lemma} gloss; more text; "an example {lemma} sentence"')
        index.append(f"{lemma} n {len(senses)} 2 @ ~ {len(senses)} 0 " + " ".join(f"{s:08d}" for s in senses))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("wordnet/data.noun", "\n".join(data) + "\n")
        archive.writestr("wordnet/index.noun", "\n".join(sorted(index)) + "\n")
        archive.writestr("wordnet/LICENSE", "WordNet 3.0")
    return path


def categories_22k(lvis_cats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The LVIS categories, then three ImageNet-only synsets, as the original list."""
    cats = [{"name": c["name"], "id": c["id"], "frequency": c["frequency"], "synset": c["synset"]} for c in lvis_cats]
    for i, synset in enumerate(("organism.n.01", "benthos.n.02", "heterotroph.n.01")):
        cats.append({"id": 1204 + i, "synset": synset, "name": synset.split(".")[0]})
    return cats


@pytest.fixture(scope="session")
def _lvis_cats_once(shared_dir) -> list[dict[str, Any]]:
    return load(shared_dir / "detic-metadata" / "lvis_v1_train_cat_info.json")


@pytest.fixture
def lvis_cats(_lvis_cats_once) -> list[dict[str, Any]]:
    """The real 1203 LVIS v1 categories (a fresh copy per test)."""
    return copy.deepcopy(_lvis_cats_once)


@pytest.fixture
def mirror(tmp_path, monkeypatch, shared_dir, lvis_cats) -> Path:
    """DETIC_ZOO_MIRROR folder with every metadata file the targets fetch."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    meta = shared_dir / "detic-metadata"
    pinned = ("lvis_v1_train_cat_info.json", "Objects365_names_fix.csv", "challenge-2019-classes-description-500.csv")
    for name in pinned:
        shutil.copy(meta / name, folder / name)
    write_json(folder / "coco_to_synset.json",
               {f"class{k}": {"coco_cat_id": k, "synset": v, "meaning": "..."} for k, v in COCO_SYNSETS.items()})
    (folder / "lvis_22k_categories.py").write_text(f"CATEGORIES = {categories_22k(lvis_cats)!r}  # noqa\n")
    wordnet_zip(folder / "wordnet.zip")
    write_json(folder / "challenge-2019-label500-hierarchy.json", oid_hierarchy())
    monkeypatch.setenv("DETIC_ZOO_MIRROR", str(folder))
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "datasets"
    path.mkdir()
    return path


@pytest.fixture
def progress() -> NullProgress:
    return NullProgress()


def add_tar(path: Path, members: dict[str, bytes | None]) -> Path:
    """A plain tar with these members (None: a directory entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


# OpenImages: real challenge-2019 class ids (from the public class list).
ANIMAL, CATTLE, CARNIVORE, DOG, CAT_OID = "/m/0jbk", "/m/01xq0k1", "/m/01lrl", "/m/0bt9lr", "/m/01yrx"


def oid_hierarchy() -> dict[str, Any]:
    """Entity -> Animal -> {Cattle, Carnivore -> {Dog, Cat}}, and Dog also directly under Animal."""
    return {"LabelName": "/m/0bl9f", "Subcategory": [
        {"LabelName": ANIMAL, "Subcategory": [
            {"LabelName": CATTLE},
            {"LabelName": CARNIVORE, "Subcategory": [{"LabelName": DOG}, {"LabelName": CAT_OID}]},
            {"LabelName": DOG},
        ]},
    ]}
