"""`detic zoo list|info|pull|verify` through the typer app (mirror folders, no network)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import detic_cli.cli.zoo  # noqa: F401  (registers `zoo` on the app)
from detic_cli.cli.app import app
from detic_cli.errors import DeticError
from detic_cli.utils import sha256_file
from detic_cli.zoo import cache
from detic_cli.zoo.catalog import DEFAULT_MODEL, weight_files

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_list_json_names_every_weight_url_of_the_seed(shared_dir):
    records = json.loads(_ok("zoo", "list", "--json"))
    urls = set(re.findall(r"https://dl\.fbaipublicfiles\.com/detic/[^)\s]+\.pth",
                          (shared_dir / "detic-reference" / "MODEL_ZOO.md").read_text()))
    assert len(urls) == 22 and urls <= {r["url"] for r in records}
    rows = [r for r in records if r["section"] not in ("backbones", "vocabularies")]
    assert len(rows) == 26 and all(r["cached"] is False for r in records)
    assert {r["section"] for r in json.loads(_ok("zoo", "list", "--section", "ov-coco", "--json"))} == {"ov-coco"}


def test_list_table_and_bad_section():
    out = _ok("zoo", "list", "--section", "lvis")
    assert "Standard LVIS" in out and "Box-Supervised_DeformDETR" in out
    result = runner.invoke(app, ["zoo", "list", "--section", "nope"])
    assert isinstance(result.exception, DeticError) and "choose one of" in str(result.exception)


def test_info_shows_everything_known():
    out = " ".join(_ok("zoo", "info", DEFAULT_MODEL).split())
    for text in ("cross-dataset/Detic_C2_SwinB_896_4x_IN-21K+COCO", "O365 AP 21.6", "47h",
                 weight_files()[DEFAULT_MODEL].url, "BoxSup-C2_LCOCO_CLIP_SwinB_896b32_4x.pth",
                 "detic detect IMAGE --model", "detic train --row", "detic eval --config",
                 "python train_net.py", "real-time/Detic_C2_SwinB_896_4x_IN-21K+COCO"):
        assert text.replace(" ", "") in out.replace(" ", ""), text
    assert "convert-pretrained" in _ok("zoo", "info", "resnet50_miil_21k")


def test_list_and_info_show_the_builtin_vocabularies(shared_dir):
    records = json.loads(_ok("zoo", "list", "--section", "vocabularies", "--json"))
    assert [(r["name"], r["num_classes"]) for r in records] == [
        ("lvis", 1203), ("objects365", 365), ("openimages", 500), ("coco", 80)]
    for r in records:  # the facts of the package's metadata match the public file
        path = shared_dir / "detic-metadata" / r["filename"]
        assert (r["size"], r["sha256"], r["cached"]) == (path.stat().st_size, sha256_file(path), False)
    table = " ".join(_ok("zoo", "list").split())
    assert "Built-in vocabularies" in table and "Standard LVIS" in table
    for r in records:
        assert f"{r['name']}" in table and r["sha256"] in table and r["filename"] in table
    info = " ".join(_ok("zoo", "info", "o365").split())
    for text in ("objects365", "365: Person, Sneakers", "o365_clip_a+cnamefix.npy: 365 x 512 float16",
                 records[1]["sha256"], "373888 bytes", "not cached", "detic zoo pull --vocab objects365"):
        assert text in info, text
    assert "rare 337, common 461, frequent 405" in " ".join(_ok("zoo", "info", "lvis").split())
    _ok("zoo", "pull", "--vocab", "coco", "--mirror", str(shared_dir / "detic-metadata"))
    assert [r["cached"] for r in json.loads(_ok("zoo", "list", "-s", "vocabularies", "--json"))] == [
        False, False, False, True]
    assert "sha256 " + records[3]["sha256"] in " ".join(_ok("zoo", "info", "coco").split())


def test_pull_verify_and_corruption(tmp_path, shared_dir):
    (tmp_path / "BoxSup_OVCOCO_CLIP_R50_1x.pth").write_bytes(b"weights")
    out = _ok("zoo", "pull", "ov-coco/BoxSup_CLIP_R50_1x", "--mirror", str(tmp_path))
    assert "BoxSup_OVCOCO_CLIP_R50_1x.pth" in out
    _ok("zoo", "pull", "--vocab", "coco", "--mirror", str(shared_dir / "detic-metadata"))
    assert "2 ok" in _ok("zoo", "verify")  # the coco .npy (known hash) and the weights (recorded)
    asset = weight_files()["BoxSup_OVCOCO_CLIP_R50_1x"]
    cache.cached_path(asset).write_bytes(b"WEIGHTS")
    result = runner.invoke(app, ["zoo", "verify"])
    assert isinstance(result.exception, DeticError) and "BoxSup_OVCOCO_CLIP_R50_1x.pth" in str(result.exception)


def test_pull_without_target_and_unknown_name():
    result = runner.invoke(app, ["zoo", "pull"])
    assert isinstance(result.exception, DeticError) and "--all" in str(result.exception)
    result = runner.invoke(app, ["zoo", "pull", "Detic_C2_SwinB"])
    assert isinstance(result.exception, DeticError) and "did you mean" in str(result.exception)


@pytest.mark.slow
def test_console_script_exit_code_and_offline_message():
    proc = subprocess.run([sys.executable, "-m", "detic_cli", "zoo", "pull", DEFAULT_MODEL],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "offline (HF_HUB_OFFLINE=1)" in proc.stderr and f"{DEFAULT_MODEL}.pth" in proc.stderr


def test_pull_backbone_converts_it_once_and_verify_checks_both(tmp_path):
    import torch
    import torchvision

    from detic_cli.checkpoint.convert import backbone_keys
    from detic_cli.checkpoint.safe_load import read_checkpoint
    from detic_cli.config import load_config
    from detic_cli.engine.backbone_weights import converted_asset
    from detic_cli.modeling.builders import build_model
    from detic_cli.zoo.resolve import config_path, find_backbone

    torch.manual_seed(0)
    source = torchvision.models.resnet18().state_dict()  # torchvision's layout, as resnet18-5c106cde.pth
    torch.save(source, tmp_path / "resnet18-5c106cde.pth")
    out = _ok("zoo", "pull", "resnet18", "--mirror", str(tmp_path))
    backbone = find_backbone("resnet18")
    converted = cache.cached_path(converted_asset(backbone))
    text = " ".join(out.split())
    assert f"resnet18.detector.pth: {converted} (converted; detector keys of configs/BoxSup-C2_LCOCO_CLIP_R18_" in text
    assert cache.cached_path(backbone.weights).is_file() and converted.is_file()

    state = read_checkpoint(converted)["model"]
    model = build_model(load_config(config_path("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x.yaml")))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and backbone_keys(missing) == []
    assert torch.equal(model.state_dict()["backbone.bottom_up.base.layer3.1.conv2.weight"],
                       source["layer3.1.conv2.weight"])

    mtime = converted.stat().st_mtime_ns
    assert "(up to date;" in _ok("zoo", "pull", "resnet18", "--mirror", str(tmp_path))
    assert converted.stat().st_mtime_ns == mtime
    assert "resnet18.detector.pth" in _ok("zoo", "info", "resnet18")
    assert "2 ok" in _ok("zoo", "verify")  # the download (recorded) and its conversion
    data = bytearray(converted.read_bytes())
    data[len(data) // 2] ^= 0xFF
    converted.write_bytes(bytes(data))
    result = runner.invoke(app, ["zoo", "verify"])
    assert isinstance(result.exception, DeticError) and "resnet18.detector.pth" in str(result.exception)


def test_pull_backbone_reads_every_container_convert_pretrained_reads(tmp_path):
    """`zoo pull` and `convert-pretrained` share one reader: a `{"model_state": ...}` file (a container only
    convert-pretrained used to accept) converts to the same tensors as the plain state dict."""
    import torch
    import torchvision

    from detic_cli.checkpoint.safe_load import read_checkpoint
    from detic_cli.engine.backbone_weights import converted_asset
    from detic_cli.zoo.resolve import find_backbone

    torch.manual_seed(1)
    source = torchvision.models.resnet18().state_dict()
    torch.save({"model_state": source, "epoch": 90}, tmp_path / "resnet18-5c106cde.pth")
    out = " ".join(_ok("zoo", "pull", "resnet18", "--mirror", str(tmp_path)).split())
    assert "resnet18.detector.pth:" in out and "(converted;" in out
    state = read_checkpoint(cache.cached_path(converted_asset(find_backbone("resnet18"))))["model"]
    assert torch.equal(state["backbone.bottom_up.base.layer2.0.downsample.0.weight"],
                       source["layer2.0.downsample.0.weight"])


def test_info_on_an_unpublished_stage(run_cli):
    code, out, _ = run_cli("zoo", "info", "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x")
    assert code == 0
    assert "never published" in out and "detic train --row BoxSup-C2_LCOCO_CLIP_R18_640b32_4x" in out
    assert "resnet18" in out
