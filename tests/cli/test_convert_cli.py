"""`detic convert-pretrained` end to end: report, --config check, output formats, one-line refusals."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

import detic_cli.cli.convert  # noqa: F401  (registers `convert-pretrained` on the app)
from detic_cli.checkpoint.safe_load import read_checkpoint
from detic_cli.cli.app import app, main
from detic_cli.errors import DeticError

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "BoxSup_OVCOCO_CLIP_R50_1x.yaml"


def test_torchvision_to_c4_config_report_and_formats(tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    result = runner.invoke(app, ["convert-pretrained", str(tmp_path / "r50.pth"), str(tmp_path / "out.pth"),
                                 "--config", str(CONFIG)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "layout torchvision-resnet" in result.output and "mapped: 265 tensors" in result.output
    assert "unused source tensors: 2: fc.bias, fc.weight" in result.output
    assert "(0 in the backbone)" in result.output and "STRIDE_IN_1X1 False" in result.output
    state = read_checkpoint(tmp_path / "out.pth")["model"]
    assert "roi_heads.res5.2.conv3.norm.running_var" in state and "backbone.res4.5.conv3.weight" in state

    result = runner.invoke(app, ["convert-pretrained", str(tmp_path / "r50.pth"), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "pass --config" in result.output
    assert "backbone.res5.0.shortcut.weight" in read_checkpoint(tmp_path / "out.safetensors")


def test_shape_mismatch_and_bad_output_are_one_line_errors(tmp_path):
    sd = {"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    torch.save(sd, tmp_path / "r18.pth")
    result = runner.invoke(app, ["convert-pretrained", str(tmp_path / "r18.pth"), str(tmp_path / "o.pth"),
                                 "--kind", "torchvision-resnet", "--config", str(CONFIG)])
    assert isinstance(result.exception, DeticError) and "shape mismatch" in str(result.exception)
    result = runner.invoke(app, ["convert-pretrained", str(tmp_path / "r18.pth"), str(tmp_path / "o.bin")])
    assert isinstance(result.exception, DeticError) and ".pth or .safetensors" in str(result.exception)
    assert not (tmp_path / "o.pth").exists()


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_pickle_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": np.zeros(2, np.float32), "x": _Exploit()}}))
    monkeypatch.setattr(sys, "argv", ["detic", "convert-pretrained", str(path), str(tmp_path / "o.pth")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and "pwned" not in out and not (tmp_path / "o.pth").exists()
    assert err.strip().count("\n") == 0 and "refused to load" in err and "builtins.print" in err


def test_unwritable_output_fails_before_reading_and_output_is_0644(run_cli, tmp_path):
    import stat

    (tmp_path / "plain").write_text("a file")
    code, _, err = run_cli("convert-pretrained", tmp_path / "missing.pth", tmp_path / "plain" / "out.pth")
    assert code == 1 and "is a file, not a folder" in err and err.strip().count("\n") == 0
    src = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    code, _, err = run_cli("convert-pretrained", src, tmp_path / "out" / "r18.detector.pth")
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "out" / "r18.detector.pth").stat().st_mode) == 0o644
