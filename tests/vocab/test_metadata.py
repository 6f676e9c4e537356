"""The shipped `metadata/` facts: read through importlib.resources, equal to what make_metadata.py derives
from the public files in ../shared/detic-metadata, and declared as package data."""

from __future__ import annotations

import subprocess
import sys
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import pytest

from detic_cli.metadata import make_metadata
from detic_cli.vocab.builtin import BUILTINS, builtin_vocabulary, read_metadata

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "metadata" / "make_metadata.py"
HAND_KEPT = {"zoo.json"}  # not derived by the script; tests/zoo/test_catalog.py checks it against MODEL_ZOO.md


def _shipped() -> dict[str, str]:
    """The shipped files make_metadata.py derives (every `.json` but the hand-kept ones)."""
    folder = files("detic_cli.metadata")
    return {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()
            if p.name.endswith(".json") and p.name not in HAND_KEPT}


def test_shipped_files_are_exactly_what_the_script_derives(shared_dir):
    derived = make_metadata.derive(shared_dir / "detic-metadata")
    shipped = _shipped()
    assert set(shipped) == set(derived) == {"vocabularies.json", "lvis_v1.json", "objects365.json",
                                            "openimages.json", "coco.json"}
    for name, value in derived.items():
        assert shipped[name] == make_metadata.render(value), f"{name} drifted: rerun metadata/make_metadata.py"


def test_the_script_writes_the_same_files(shared_dir, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(shared_dir / "detic-metadata"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    assert written == _shipped()
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "missing lvis_v1_train_cat_info.json" in proc.stderr


def test_lvis_names_synonyms_and_frequency():
    classes = builtin_vocabulary("lvis").classes()
    assert len(classes) == 1203 and [c.id for c in classes] == list(range(1, 1204))
    first = classes[0]
    assert (first.name, first.synonyms, first.frequency) == ("aerosol_can", ("aerosol_can", "spray_can"), "c")
    counts = {f: sum(c.frequency == f for c in classes) for f in "rcf"}
    assert counts == {"r": 337, "c": 461, "f": 405}  # LVIS v1's published split
    assert all(c.synonyms for c in classes)


def test_objects365_openimages_coco_names():
    o365 = builtin_vocabulary("objects365").classes()
    assert len(o365) == 365 and (o365[37].name, o365[37].official_name) == ("Monitor/TV", "Moniter/TV")
    assert sum(c.name != c.official_name for c in o365) == 13  # the original's spelling fixes
    oid = builtin_vocabulary("openimages").classes()
    assert len(oid) == 500 and (oid[0].name, oid[0].freebase_id) == ("Infant bed", "/m/061hd_")
    coco = builtin_vocabulary("coco").classes()
    assert len(coco) == 80 and (coco[0].name, coco[-1].name, coco[-1].id) == ("person", "toothbrush", 90)
    assert len({c.name for c in coco}) == 80


def test_index_points_at_every_classes_file():
    index = read_metadata("vocabularies.json")
    assert list(index) == list(BUILTINS) == ["lvis", "objects365", "openimages", "coco"]
    for name, entry in index.items():
        classes = read_metadata(entry["classes"])["classes"]
        assert len(classes) == entry["num_classes"] == entry["embeddings"]["shape"][0]
        assert entry["embeddings"]["url"].endswith("/" + entry["embeddings"]["filename"]), name


def test_metadata_is_declared_as_package_data():
    """pyproject.toml's globs take every shipped file and setup.py maps the folder into the package,
    so wheels and editable installs both carry it (checked by hand with `pip wheel` + `unzip -l`)."""
    tomllib = pytest.importorskip("tomllib")
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    names = [p.name for p in (REPO / "metadata").iterdir() if p.is_file() and p.suffix != ".py"]
    assert names and all(any(fnmatch(n, g) for g in globs["detic_cli.metadata"]) for n in names)
    setup = (REPO / "setup.py").read_text()
    assert '"detic_cli.metadata": "metadata"' in setup and '"detic_cli.metadata"]' in setup


@pytest.mark.parametrize("bad", ["missing.json", "make_metadata.py"])
def test_a_missing_or_damaged_resource_is_one_clear_line(bad):
    from detic_cli.errors import DeticError

    with pytest.raises(DeticError, match=f"detic_cli.metadata/{bad} is missing or damaged.*reinstall detic"):
        read_metadata(bad)
