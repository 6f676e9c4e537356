"""`detic data status` and `detic data prepare` through the real entry point; atomic writes."""

from __future__ import annotations

import json

import pytest

from detic_cli.data.prepare.jsonio import dataset_json_writer, write_json
from detic_cli.data.prepare.registry import TARGETS
from tests.data.prepare.conftest import load
from tests.data.prepare.test_lvis_targets import lvis_train


def _lines(text: str) -> dict[str, str]:
    """target name -> rest of its status line."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name in TARGETS:
            out[name] = " ".join(rest.split())
    return out


def test_status_lists_every_target(run_cli, root, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(root))
    code, out, err = run_cli("data", "status")
    assert code == 0, err
    lines = _lines(out)
    assert list(lines) == list(TARGETS) and len(lines) == 8
    assert all(v.startswith("source missing needs ") for v in lines.values())
    assert "lvis/lvis_v1_train.json: download lvis_v1_train.json (lvisdataset.org)" in lines["lvis-norare"]
    assert "imagenet/ImageNet-21K/nXXXXXXXX.tar" in lines["imagenet-lvis"]


def test_prepare_status_idempotence_and_force(run_cli, root, mirror, lvis_cats):
    train = root / "lvis" / "lvis_v1_train.json"
    train.parent.mkdir(parents=True)
    train.write_text(json.dumps(lvis_train(lvis_cats)))
    code, out, _ = run_cli("data", "status", "--root", root)
    assert code == 0 and _lines(out)["lvis-norare"] == f"missing detic data prepare lvis-norare --root {root}"

    code, out, err = run_cli("data", "prepare", "lvis-norare", "--root", root)
    assert code == 0, err
    made = root / "lvis" / "lvis_v1_train_norare.json"
    assert out.split() == [str(made), str(root / "metadata" / "lvis_v1_train_cat_info.json")]
    assert _lines(run_cli("data", "status", "--root", root)[1])["lvis-norare"].startswith("present lvis/")
    stamp = made.stat().st_mtime_ns

    data = lvis_train(lvis_cats)
    data["annotations"] = data["annotations"][:1]
    train.write_text(json.dumps(data))
    code, _, err = run_cli("data", "prepare", "lvis-norare", "--root", root)
    assert code == 0 and "already prepared" in err and made.stat().st_mtime_ns == stamp
    assert len(load(made)["annotations"]) == 4

    code, _, err = run_cli("data", "prepare", "lvis-norare", "--root", root, "--force")
    assert code == 0, err
    assert len(load(made)["annotations"]) == 1
    assert not [p for p in made.parent.iterdir() if p.name.endswith(".tmp")]


def test_prepare_errors_are_one_line(run_cli, root):
    code, _, err = run_cli("data", "prepare", "lvis-rare", "--root", root)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "unknown dataset target 'lvis-rare'" in err and "lvis-norare" in err
    code, _, err = run_cli("data", "prepare", "coco-zeroshot", "--root", root)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{root}/coco/annotations/instances_train2017.json" in err and "cocodataset.org" in err


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"a": [1, 2]})
    with pytest.raises(TypeError):
        write_json(path, {"a": {1, 2}})  # not json-serialisable: the old file stays
    assert load(path) == {"a": [1, 2]}
    with pytest.raises(RuntimeError):
        with dataset_json_writer(tmp_path / "stream.json", {"categories": []}) as writer:
            writer.add({"id": 1})
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with dataset_json_writer(tmp_path / "stream.json", {"categories": [{"id": 1}]}) as writer:
        for i in (1, 2):
            writer.add({"id": i})
        writer.tail = {"annotations": []}
    assert load(tmp_path / "stream.json") == {"categories": [{"id": 1}], "images": [{"id": 1}, {"id": 2}],
                                              "annotations": []}
