"""`detic detect` vocabularies with parity detectors: class names through the parity CLIP checkpoint, the
built-in ones offline (Deformable DETR's LVIS names from the package; missing embeddings named in one line)."""

from __future__ import annotations

import json

import pytest

from detic_cli.clip import encoder as clip_encoder
from detic_cli.vocab.builtin import builtin_class_names

R18 = "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml"


def _no_clip(*_args, **_kwargs):
    raise AssertionError("CLIP was loaded although the vocabulary is cached")


@pytest.mark.slow
def test_names_label_boxes_and_second_run_uses_cache(run_cli, shared_dir, parity_checkpoint, parity_clip,
                                                      tmp_path, monkeypatch):
    args = ["detect", shared_dir / "parity/images/astronaut.jpg", "--config",
            shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
            "--vocab", "cat,dog", "--clip-checkpoint", parity_clip, "--device", "cpu", "--threshold", "0.05",
            "--pred-all-class", "INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=200"]
    code, _, err = run_cli(*args, "--json", tmp_path / "first.json")
    assert code == 0, err
    first = json.loads((tmp_path / "first.json").read_text())[0]["instances"]
    assert first and {i["class_name"] for i in first} <= {"cat", "dog"}
    assert {i["class_index"] for i in first} <= {0, 1}

    monkeypatch.setattr(clip_encoder, "_LOADED", {})
    monkeypatch.setattr(clip_encoder, "load_encoder", _no_clip)
    code, _, err = run_cli(*args, "--json", tmp_path / "second.json")
    assert code == 0, err
    assert json.loads((tmp_path / "second.json").read_text())[0]["instances"] == first


DETR_CONFIGS = ["Base-DeformDETR_L_R50_4x.yaml", "BoxSup-DeformDETR_L_R50_2x.yaml", "BoxSup-DeformDETR_L_R50_4x.yaml",
                "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"]
SMALL = ["INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=200"]


def _offline_cold(monkeypatch, tmp_path):
    home = tmp_path / "empty_home"
    monkeypatch.setenv("DETIC_HOME", str(home))
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    monkeypatch.delenv("DETIC_ZOO_MIRROR", raising=False)
    return home


@pytest.mark.slow
@pytest.mark.parametrize("config", DETR_CONFIGS)
def test_deformable_detr_detects_with_a_cold_cache_and_no_network(run_cli, shared_dir, parity_checkpoint,
                                                                  tmp_path, monkeypatch, config):
    home = _offline_cold(monkeypatch, tmp_path)
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--config",
                           shared_dir / "detic-reference/configs" / config, "--weights", parity_checkpoint(config),
                           "--device", "cpu", "--json", tmp_path / "out.json", *SMALL)
    assert code == 0, err
    instances = json.loads((tmp_path / "out.json").read_text())[0]["instances"]
    lvis = builtin_class_names("lvis")
    assert instances and all(i["class_name"] == lvis[i["class_index"]] for i in instances)
    assert not (home / "vocab").exists()  # the names came from the package; nothing was fetched


def test_deformable_detr_refuses_another_builtin_vocabulary(run_cli, shared_dir, tmp_path, monkeypatch):
    _offline_cold(monkeypatch, tmp_path)
    config = shared_dir / "detic-reference/configs" / DETR_CONFIGS[-1]
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--config", config,
                           "--weights", tmp_path / "never_read.pth", "--vocab", "coco", "--device", "cpu")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "--vocab coco: DeformableDetr has a fixed, learned 1203-class classifier" in err
    assert "use --vocab lvis or omit --vocab" in err


def test_missing_builtin_embeddings_offline_is_one_line_with_the_pull_command(run_cli, shared_dir, parity_checkpoint,
                                                                               tmp_path, monkeypatch):
    _offline_cold(monkeypatch, tmp_path)
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--config",
                           shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
                           "--vocab", "lvis", "--device", "cpu", *SMALL)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "lvis_v1_clip_a+cname.npy is not in the cache" in err
    assert "detic zoo pull --vocab lvis --mirror DIR" in err
    code, _, err = run_cli("zoo", "pull", "--vocab", "lvis", "--mirror", shared_dir / "detic-metadata")
    assert code == 0, err  # the command the message gives works
    code, _, err = run_cli("detect", shared_dir / "parity/images/astronaut.jpg", "--config",
                           shared_dir / "detic-reference/configs" / R18, "--weights", parity_checkpoint(R18),
                           "--vocab", "lvis", "--device", "cpu", "--json", tmp_path / "out.json", *SMALL)
    assert code == 0, err
    assert json.loads((tmp_path / "out.json").read_text())[0]["file_name"].endswith("astronaut.jpg")
