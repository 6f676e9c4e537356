"""`detic detect --vocab "cat,dog"` with a parity detector and the parity CLIP checkpoint."""

from __future__ import annotations

import json

import pytest

from detic_cli.vocab import build

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

    monkeypatch.setattr(build, "_LOADED", {})
    monkeypatch.setattr(build, "load_encoder", _no_clip)
    code, _, err = run_cli(*args, "--json", tmp_path / "second.json")
    assert code == 0, err
    assert json.loads((tmp_path / "second.json").read_text())[0]["instances"] == first
