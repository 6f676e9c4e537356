"""`detect --model NAME --vocab lvis` end to end from a mirror folder, as a new user with internet would."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from detic_cli.zoo.resolve import find_row

R18_ROW = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size"


def test_detect_model_from_mirror_matches_reference(shared_dir, parity_checkpoint, run_cli, tmp_path, monkeypatch):
    import importlib.util

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    row = find_row(R18_ROW)
    shutil.copy(parity_checkpoint("Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"),
                mirror / row.weights.url.rsplit("/", 1)[-1])
    for name in ("lvis_v1_clip_a+cname.npy", "lvis_v1_train_cat_info.json"):
        shutil.copy(shared_dir / "detic-metadata" / name, mirror / name)
    out = tmp_path / "out.json"
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--model", R18_ROW, "--vocab",
                           "lvis", "--mirror", mirror, "--device", "cpu", "--json", out)
    assert code == 0, err
    record = json.loads(out.read_text())[0]
    case = json.loads((shared_dir / "parity/cases/r18_astronaut.json").read_text())
    spec = importlib.util.spec_from_file_location("cmp", shared_dir / "parity/compare_detections.py")
    cmp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cmp)
    result = cmp.compare_strict(case, record)
    assert result["identical"], result
    cats = sorted(json.loads((shared_dir / "detic-metadata/lvis_v1_train_cat_info.json").read_text()),
                  key=lambda c: c["id"])
    assert all(i["class_name"] == cats[i["class_index"]]["name"] for i in record["instances"])
    # second run: everything comes from the cache, even offline
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--model", R18_ROW, "--vocab",
                           "lvis", "--device", "cpu", "--json", out)
    assert code == 0, err


def test_unknown_model_name(run_cli, shared_dir):
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--model", "Detic_R18_typo")
    assert code == 1 and "not in the zoo" in err


def test_bad_vocab_fails_before_model_files_are_pulled(run_cli, tmp_path):
    """A --vocab with no class name is refused at once: no model file is fetched into the cache."""
    mirror = tmp_path / "mirror"  # the model's files are not there: fetching them would be the error otherwise
    mirror.mkdir()
    picture = tmp_path / "x.jpg"
    picture.write_bytes(b"not decoded: the vocabulary is checked first")
    for vocab, message in ((", ,", "no class names"), ("", "--vocab: empty")):
        code, _, err = run_cli("detect", picture, "--model", R18_ROW, "--vocab", vocab, "--mirror", mirror)
        assert code == 1 and message in err and err.strip().count("\n") == 0, err
    assert not [p for p in Path(os.environ["DETIC_HOME"]).rglob("*") if p.is_file()]
