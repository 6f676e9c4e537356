"""FPN + top block of every CenterNet2 backbone family, built from the original configs, against an
independent transcription of detectron2's FPN with CenterNet2's LastLevelP6P7_P5 (p6 from the p5 *output*)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from detic_cli.config import load_config
from detic_cli.modeling.builders import build_backbone

FAMILIES = {  # config -> (bottom-up features fed to the FPN, their channels)
    "Detic_LCOCOI21k_CLIP_SwinB_896b32_4x_ft4x_max-size.yaml": (["swin1", "swin2", "swin3"], [256, 512, 1024]),
    "Detic_LCOCOI21k_CLIP_CXT21k_640b32_4x_ft4x_max-size.yaml": (["layer2", "layer3", "layer4"], [192, 384, 768]),
    "Detic_LCOCOI21k_CLIP_R18_640b32_4x_ft4x_max-size.yaml": (["layer3", "layer4", "layer5"], [128, 256, 512]),
}


def _backbone_weights(shared: Path, config: str) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("parity_weights", shared / "parity/parity_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manifest = json.loads((shared / "parity/manifests.json").read_text())[config]
    # the pyramid's own weights; the bottom-up keeps its random init (its layout is tested elsewhere)
    keys = {k: v for k, v in manifest.items() if k.startswith("backbone.") and ".bottom_up." not in k}
    return {k[len("backbone."):]: v for k, v in module.parity_state_dict(keys, seed=0).items()}


def _conv(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, **kw) -> torch.Tensor:
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], **kw)


def reference_fpn(bottom: dict[str, torch.Tensor], sd: dict[str, torch.Tensor], in_features: list[str],
                  strides: list[int]) -> dict[str, torch.Tensor]:
    """detectron2 FPN (norm "", sum fuse): coarse-to-fine laterals + 2x nearest top-down, 3x3 outputs;
    then p6 = conv3x3/2(p5 output), p7 = conv3x3/2(relu(p6))."""
    out: dict[str, torch.Tensor] = {}
    top_down = None
    for name, stride in reversed(list(zip(in_features, strides))):
        level = int(math.log2(stride))
        lateral = _conv(bottom[name], sd, f"fpn_lateral{level}")
        if top_down is not None:
            lateral = lateral + top_down.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        top_down = lateral
        out[f"p{level}"] = _conv(lateral, sd, f"fpn_output{level}", padding=1)
    p6 = _conv(out["p5"], sd, "top_block.p6", stride=2, padding=1)
    out["p6"] = p6
    out["p7"] = _conv(F.relu(p6), sd, "top_block.p7", stride=2, padding=1)
    return out


@pytest.mark.parametrize("config", list(FAMILIES), ids=lambda c: c.split("_")[3])
def test_fpn_and_top_block_match_the_original_wiring(config: str, shared_dir: Path) -> None:
    cfg = load_config(shared_dir / "detic-reference/configs" / config)
    torch.manual_seed(0)
    backbone = build_backbone(cfg).eval()
    sd = _backbone_weights(shared_dir, config)
    missing, unexpected = backbone.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("bottom_up.") for k in missing)
    features, channels = FAMILIES[config]
    assert list(cfg.MODEL.FPN.IN_FEATURES) == features
    assert [backbone.bottom_up.out_channels[f] for f in features] == channels
    assert [backbone.bottom_up.out_strides[f] for f in features] == [8, 16, 32]
    assert backbone.out_features == ["p3", "p4", "p5", "p6", "p7"]
    assert backbone.size_divisibility == 32  # the images are padded to 32 before the backbone
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        got = backbone(x)
        want = reference_fpn(backbone.bottom_up(x), sd, features, [8, 16, 32])
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        stride = 2 ** int(name[1:])
        assert got[name].shape == (1, 256, -(-96 // stride), -(-160 // stride))
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-4 * float(value.abs().max()))
