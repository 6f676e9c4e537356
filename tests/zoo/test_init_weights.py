"""resolve_init_weights: backbone inits pulled and converted, row inits pulled, unpublished stages refused."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from detic_cli.checkpoint.convert import backbone_keys
from detic_cli.checkpoint.safe_load import read_checkpoint
from detic_cli.config import load_config
from detic_cli.engine.backbone_weights import converted_asset
from detic_cli.engine.init_weights import init_name, resolve_init_spec, resolve_init_weights
from detic_cli.errors import DeticError
from detic_cli.modeling.builders import build_model
from detic_cli.progress import NullProgress
from detic_cli.zoo import cache
from detic_cli.zoo.catalog import weight_files
from detic_cli.zoo.resolve import config_path, find_backbone, find_row

BOXSUP_R50 = "lvis/Box-Supervised_C2_R50_640_4x"
MIIL = find_backbone("resnet50_miil_21k")


@pytest.fixture(scope="module")
def miil_bytes(tmp_path_factory):
    """A randomly initialised timm ResNet-50 with the 21K classifier, in MIIL's `{"state_dict": ...}` file layout
    (float16 to halve its ~190 MB; the file is deleted after the module)."""
    torch.manual_seed(0)
    state = timm.create_model("resnet50", pretrained=False, num_classes=11221).half().state_dict()
    path = tmp_path_factory.mktemp("miil") / MIIL.weights.filename
    torch.save({"state_dict": state}, path)
    data = path.read_bytes()
    path.unlink()
    return data


def test_backbone_init_is_pulled_and_converted_once(server, online, miil_bytes):
    server.state.files[f"/{MIIL.weights.filename}"] = miil_bytes
    mirror = server.url("/")
    path = resolve_init_weights(BOXSUP_R50, mirror=mirror, progress=NullProgress())
    assert path == cache.cached_path(converted_asset(MIIL)) and path.name == "resnet50_miil_21k.detector.pth"
    assert cache.cached_path(MIIL.weights).read_bytes() == miil_bytes  # the original is kept
    record = json.loads(cache.record_path(converted_asset(MIIL)).read_text())
    assert record["converted_from"]["kind"] == "timm-resnet" and record["converted_from"]["backbone_random_init"] == []

    state = read_checkpoint(path)["model"]
    model = build_model(load_config(config_path(find_row(BOXSUP_R50).config)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and backbone_keys(missing) == []
    assert any(k.startswith("backbone.bottom_up.base.") for k in state)
    source = torch.load(cache.cached_path(MIIL.weights), weights_only=True)["state_dict"]
    loaded = model.state_dict()
    for key in ("conv1.weight", "layer4.2.conv3.weight", "layer2.0.bn1.running_var", "fc.weight"):
        assert torch.equal(loaded[f"backbone.bottom_up.base.{key}"], source[key].float()), key

    # the stage that starts from the same backbone, and a second call: no download, no conversion
    requests, mtime = len(server.state.requests), path.stat().st_mtime_ns
    assert resolve_init_weights("BoxSup-C2_LCOCO_CLIP_R5021k_640b64_4x", mirror=mirror) == path
    assert resolve_init_spec(load_config(config_path(find_row(BOXSUP_R50).config)).MODEL.WEIGHTS) == str(path)
    assert len(server.state.requests) == requests and path.stat().st_mtime_ns == mtime
    # a lost conversion is made again from the cached download
    path.unlink()
    assert resolve_init_weights(BOXSUP_R50, mirror=mirror, progress=NullProgress()) == path
    key = "backbone.bottom_up.base.conv1.weight"
    assert len(server.state.requests) == requests and torch.equal(read_checkpoint(path)["model"][key], state[key])


def test_detic_row_starts_from_its_boxsup_weights(tmp_path):
    (tmp_path / "BoxSup-C2_L_CLIP_R5021k_640b64_4x.pth").write_bytes(b"box-supervised weights")
    path = resolve_init_weights("lvis/Detic_C2_R50_640_4x", mirror=str(tmp_path), progress=NullProgress())
    assert path == cache.cached_path(weight_files()["BoxSup-C2_L_CLIP_R5021k_640b64_4x"])
    assert path.read_bytes() == b"box-supervised weights"
    assert init_name("Detic_LI_CLIP_R5021k_640b64_4x_ft4x_max-size") == "BoxSup-C2_L_CLIP_R5021k_640b64_4x"
    assert resolve_init_spec("zoo://BoxSup-C2_L_CLIP_R5021k_640b64_4x") == str(path)
    assert resolve_init_spec("models/x.pth") == "models/x.pth" and resolve_init_spec("") == ""


def test_unpublished_stage_is_one_line_naming_its_config():
    with pytest.raises(DeticError) as info:
        resolve_init_weights("real-time/Detic_C2_R18_896_4x_IN-21K+COCO")
    message = str(info.value)
    assert "\n" not in message and "BoxSup-C2_LCOCO_CLIP_R18_640b32_4x" in message
    assert "detic train --row BoxSup-C2_LCOCO_CLIP_R18_640b32_4x" in message and "--weights" in message
    assert init_name("BoxSup-C2_LCOCO_CLIP_R18_640b32_4x") == "resnet18"  # stages resolve to their own init


def test_a_file_that_does_not_fit_is_refused_and_nothing_is_cached(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 3, 3, 3)}}, tmp_path / MIIL.weights.filename)
    with pytest.raises(DeticError, match="cannot convert resnet50_miil_21k .*shape mismatch.*pull again"):
        resolve_init_weights(BOXSUP_R50, mirror=str(tmp_path), progress=NullProgress())
    assert not cache.cached_path(converted_asset(MIIL)).exists()
