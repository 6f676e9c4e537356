"""Dataset registry: names, DETIC_DATASETS, coco:/lvis: specs and the missing-files message."""

from __future__ import annotations

from pathlib import Path

import pytest

from detic_cli.data.catalog import dataset_names, image_file, resolve_dataset
from detic_cli.errors import DeticError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_registered_names():
    assert {"lvis_v1_val", "lvis_v1_minival", "coco_2017_val", "coco_generalized_zeroshot_val",
            "objects365_v2_val", "oid_val_expanded"} <= set(dataset_names())  # fmt: skip


def test_missing_dataset_names_expected_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    with pytest.raises(DeticError) as err:
        resolve_dataset("oid_val_expanded")
    msg = str(err.value)
    assert str(tmp_path / "oid/annotations/oid_challenge_2019_val_expanded.json") in msg
    assert str(tmp_path / "oid/annotations/challenge-2019-label500-hierarchy.json") in msg
    assert str(tmp_path / "oid/images/validation") in msg and "(missing)" in msg and "\n" not in msg


def test_resolves_under_env_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    _touch(tmp_path / "lvis/lvis_v1_val.json")
    (tmp_path / "coco/val2017").mkdir(parents=True)
    ds = resolve_dataset("lvis_v1_val")
    assert (ds.kind, ds.annotation, ds.image_root) == ("lvis", tmp_path / "lvis/lvis_v1_val.json", tmp_path / "coco")
    url = "http://images.cocodataset.org/val2017/000000397133.jpg"
    assert image_file(ds, {"id": 1, "coco_url": url}) == tmp_path / "coco/val2017/000000397133.jpg"


def test_default_root_is_cwd_datasets(tmp_path, monkeypatch):
    monkeypatch.delenv("DETIC_DATASETS", raising=False)
    monkeypatch.chdir(tmp_path)
    ds = resolve_dataset("coco_generalized_zeroshot_val", check=False)
    assert ds.kind == "ovcoco"
    assert ds.annotation == Path("datasets/coco/zero-shot/instances_val2017_all_2_oriorder.json")


def test_objects365_takes_the_first_present_annotation(tmp_path):
    (tmp_path / "objects365/val").mkdir(parents=True)
    original = _touch(tmp_path / "objects365/annotations/zhiyuan_objv2_val.json")
    assert resolve_dataset("objects365_v2_val", root=tmp_path).annotation == original
    fixed = _touch(tmp_path / "objects365/annotations/zhiyuan_objv2_val_fixname.json")
    assert resolve_dataset("objects365_v2_val", root=tmp_path).annotation == fixed


def test_format_specs(tmp_path):
    ann = _touch(tmp_path / "my.json")
    (tmp_path / "imgs").mkdir()
    ds = resolve_dataset(f"coco:{ann}:{tmp_path / 'imgs'}")
    assert (ds.kind, ds.annotation, ds.image_root) == ("coco", ann, tmp_path / "imgs")
    assert resolve_dataset(f"lvis:{ann}:{tmp_path / 'imgs'}").kind == "lvis"
    with pytest.raises(DeticError, match="not found"):
        resolve_dataset(f"coco:{tmp_path / 'nope.json'}:{tmp_path / 'imgs'}")
    with pytest.raises(DeticError, match="coco:ANN.json:IMAGES_DIR"):
        resolve_dataset(f"coco:{ann}")
    with pytest.raises(DeticError, match="unknown dataset"):
        resolve_dataset("voc_2007_test")
