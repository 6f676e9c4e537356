"""`detic build-vocab` end to end through the real entry point (exit codes, files, messages)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from detic_cli.cli.app import main
from tests.vocab.conftest import assert_parity


@pytest.fixture(scope="session")
def case(shared_dir: Path) -> tuple[Path, np.ndarray]:
    cases = shared_dir / "parity" / "cases"
    return cases / "clip_visible_names.txt", np.load(cases / "clip_visible_expected.npy")


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["detic", "build-vocab", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_names_file_matches_original(monkeypatch, capsys, tmp_path, parity_clip, case):
    names_file, expected = case
    out = tmp_path / "v.npy"
    code, stdout, _ = run(monkeypatch, capsys, "--names-file", str(names_file), "--clip-checkpoint",
                          str(parity_clip), "--out", str(out), "--device", "cpu")
    assert code == 0 and "12 x 512 float32" in stdout
    arr = np.load(out)
    assert arr.dtype == np.float32
    assert_parity(arr, expected)
    side = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert side["names"] == names_file.read_text().splitlines()
    assert side["prompt"] == "a {}" and side["dimension"] == 512 and side["encoder"].startswith("clip-checkpoint:")
    assert side["sha256"] == hashlib.sha256(arr.tobytes()).hexdigest()


def test_float16_prompt_and_fix_space(monkeypatch, capsys, tmp_path, parity_clip, case):
    _, expected = case
    out = tmp_path / "h.npy"
    code, _, _ = run(monkeypatch, capsys, "--names", "aerosol_can,airplane", "--fix-space", "--prompt", "a {}",
                     "--clip-checkpoint", str(parity_clip), "--out", str(out), "--dtype", "float16",
                     "--batch-size", "1")
    assert code == 0
    arr = np.load(out)
    assert arr.dtype == np.float16 and arr.shape == (2, 512)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["names"] == ["aerosol can", "airplane"] and side["fix_space"] is True
    assert_parity(arr[1:], expected[2:3], float16=True)  # "airplane" has no underscore: same row as the case
    assert not np.allclose(arr[0], expected[0], atol=1e-1)  # "a aerosol can" differs from "a aerosol_can"


def test_ann_with_synonyms(monkeypatch, capsys, tmp_path, parity_clip, case):
    names_file, expected = case
    names = names_file.read_text().splitlines()
    cats = [{"id": 7, "name": "second", "synonyms": [names[3]]},
            {"id": 2, "name": "first", "synonyms": [names[0], names[1]]}]
    ann = tmp_path / "lvis.json"
    ann.write_text(json.dumps({"categories": cats}))
    out = tmp_path / "lvis.npy"
    code, _, _ = run(monkeypatch, capsys, "--ann", str(ann), "--avg-synonyms", "--clip-checkpoint",
                     str(parity_clip), "--out", str(out))
    assert code == 0
    arr = np.load(out)
    assert_parity(arr, np.stack([expected[:2].mean(0), expected[3]]))
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["names"] == ["first", "second"] and side["synonyms_averaged"] is True


@pytest.mark.parametrize("args", [
    ["--out", "x.npy"],
    ["--names", "a", "--ann", "x.json", "--out", "x.npy"],
    ["--names", "a", "--avg-synonyms", "--out", "x.npy"],
    ["--names", "a", "--out", "x.txt"],
    ["--names", "a", "--out", "x.npy", "--dtype", "int8"],
])
def test_usage_errors_exit_2(monkeypatch, capsys, args):
    code, _, _ = run(monkeypatch, capsys, *args)
    assert code == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--names", ",,", "--out", "x.npy"], "no class names"),
    (["--names", "", "--out", "x.npy"], "no class names"),
    (["--names", "cat", "--prompt", "a photo", "--out", "x.npy"], "template"),
    (["--names-file", "missing.txt", "--out", "x.npy"], "file not found"),
    (["--names", "cat", "--clip-checkpoint", "missing.pt", "--out", "x.npy"], "file not found"),
    (["--names", "cat", "--out", "x.npy"], "not in the local cache"),
])
def test_input_errors_exit_1_with_one_line(monkeypatch, capsys, tmp_path, args, message):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()
