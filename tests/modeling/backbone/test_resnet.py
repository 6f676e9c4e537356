"""detectron2-layout ResNet: checkpoint keys of the original configs, options, and res4 parity."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detic_cli.config import load_config
from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.resnet import ResNet, make_stage
from detic_cli.modeling.builders import build_res5_stage, build_resnet_backbone

C4_CONFIGS = [
    "BoxSup_OVCOCO_CLIP_R50_1x.yaml",
    "Detic_OVCOCO_CLIP_R50_1x_max-size.yaml",
    "Detic_OVCOCO_CLIP_R50_1x_caption.yaml",
    "Detic_OVCOCO_CLIP_R50_1x_max-size_caption.yaml",
]
DETR_CONFIG = "Base-DeformDETR_L_R50_4x.yaml"
DETR_PREFIX = "detr.backbone.0.backbone."


def _config(shared_dir, name):
    return load_config(shared_dir / "detic-reference" / "configs" / name)




def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", C4_CONFIGS)
def test_c4_backbone_keys_match_the_original_checkpoint(parity_keys, shared_dir, name):
    backbone = build_resnet_backbone(_config(shared_dir, name))
    assert _shapes(backbone) == parity_keys.manifest(name, "backbone.")
    assert backbone.out_features == ["res4"]
    assert backbone.out_channels == {"res4": 1024} and backbone.out_strides == {"res4": 16}
    assert isinstance(backbone, Backbone) and backbone.size_divisibility == 0


@pytest.mark.parametrize("name", C4_CONFIGS)
def test_c4_res5_head_stage_keys_match(parity_keys, shared_dir, name):
    res5 = build_res5_stage(_config(shared_dir, name))
    assert _shapes(res5) == parity_keys.manifest(name, "roi_heads.res5.")
    x = torch.randn(2, 1024, 14, 14)
    assert res5.eval()(x).shape == (2, 2048, 7, 7)


def test_deformable_detr_backbone_has_the_same_layout(parity_keys, shared_dir):
    """The Deformable DETR rows keep a detectron2 ResNet under `detr.backbone.0.backbone.` (torchvision strides)."""
    cfg = _config(shared_dir, DETR_CONFIG)
    backbone = build_resnet_backbone(cfg)
    assert _shapes(backbone) == parity_keys.manifest(DETR_CONFIG, DETR_PREFIX)
    assert backbone.out_strides == {"res3": 8, "res4": 16, "res5": 32}
    assert backbone.out_channels == {"res3": 512, "res4": 1024, "res5": 2048}
    block = backbone.res3[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)  # STRIDE_IN_1X1 False


def test_stride_in_1x1_and_freeze():
    msra = ResNet(depth=50, out_features=["res3"], stride_in_1x1=True, norm="BN", freeze_at=2)
    assert msra.res3[0].conv1.stride == (2, 2) and msra.res3[0].conv2.stride == (1, 1)
    assert isinstance(msra.stem.conv1.norm, FrozenBatchNorm2d)
    assert isinstance(msra.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(msra.res3[0].conv1.norm, nn.BatchNorm2d)
    assert not any(p.requires_grad for p in msra.stem.parameters())
    assert not any(p.requires_grad for p in msra.res2.parameters())
    assert all(p.requires_grad for p in msra.res3.parameters())


def test_output_shapes_dilation_and_basic_blocks():
    x = torch.randn(1, 3, 67, 93)
    deep = ResNet(depth=50, out_features=["stem", "res2", "res5"], res5_dilation=2, stem_out_channels=16,
                  res2_out_channels=32, width_per_group=8).eval()
    with torch.no_grad():
        out = deep(x)
    assert deep.out_strides == {"stem": 4, "res2": 4, "res5": 16}
    assert deep.out_channels == {"stem": 16, "res2": 32, "res5": 256}
    assert out["stem"].shape == (1, 16, 17, 24) and out["res2"].shape == (1, 32, 17, 24)
    assert out["res5"].shape == (1, 256, 5, 6)
    assert deep.res5[0].conv2.dilation == (2, 2) and deep.res5[0].conv2.padding == (2, 2)
    r18 = ResNet(depth=18, out_features=["res4", "res5"], res2_out_channels=64).eval()
    assert r18.out_channels == {"res4": 256, "res5": 512}
    assert sorted(k for k in r18.state_dict() if k.startswith("res2.0.")) == sorted(
        f"res2.0.{c}.{p}"
        for c in ("conv1", "conv2")
        for p in ("weight", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var")
    )
    with torch.no_grad():
        assert r18(x)["res5"].shape == (1, 512, 3, 3)
    stage = make_stage(num_blocks=2, in_channels=8, out_channels=16, bottleneck_channels=4, first_stride=2)
    assert stage(torch.randn(1, 8, 10, 10)).shape == (1, 16, 5, 5)
    with pytest.raises(ValueError):
        ResNet(depth=50, out_features=["res6"])


def _resize_shortest_edge(img: np.ndarray, short: int, max_size: int) -> np.ndarray:
    """detectron2 ResizeShortestEdge (test): scale, cap the long side, int(x + 0.5), PIL bilinear."""
    h, w = img.shape[:2]
    scale = short / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        cap = max_size / max(newh, neww)
        newh, neww = newh * cap, neww * cap
    size = (int(neww + 0.5), int(newh + 0.5))
    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


@pytest.fixture(scope="module")
def chelsea_res4(parity_keys, shared_dir):
    """res4 of the C4 parity checkpoint (seed 0) on the chelsea case input, computed once."""
    name = "BoxSup_OVCOCO_CLIP_R50_1x.yaml"
    cfg = _config(shared_dir, name)
    backbone = build_resnet_backbone(cfg).eval()
    weights = parity_keys.weights(parity_keys.manifest(name, "backbone."), "backbone.")
    backbone.load_state_dict(weights, strict=True)
    img = cv2.imread(str(shared_dir / "parity" / "images" / "chelsea.jpg"))  # BGR, the config's format
    img = _resize_shortest_edge(img, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    x = torch.as_tensor(img.astype("float32").transpose(2, 0, 1))
    x = (x - torch.tensor(cfg.MODEL.PIXEL_MEAN).view(3, 1, 1)) / torch.tensor(cfg.MODEL.PIXEL_STD).view(3, 1, 1)
    with torch.no_grad():
        return backbone(x[None])["res4"]


def test_res4_matches_the_reference(shared_dir, chelsea_res4):
    case = json.loads((shared_dir / "parity" / "cases" / "c4_chelsea.json").read_text())
    ref = case["expected"]["intermediate"]
    assert list(chelsea_res4.shape[-2:]) == [(s + 15) // 16 for s in ref["input_hw"]]
    stats = ref["features"]["res4"]
    assert list(chelsea_res4.shape) == stats["shape"]
    assert chelsea_res4.mean().item() == pytest.approx(stats["mean"], rel=1e-4)
    assert chelsea_res4.std().item() == pytest.approx(stats["std"], rel=1e-4)
    torch.testing.assert_close(chelsea_res4.flatten()[:8], torch.tensor(stats["head"]), rtol=1e-4, atol=1e-3)
