"""Upstream layouts saved as upstream ships them -> convert -> detector: same backbone outputs."""

from __future__ import annotations

import pickle
import re

import numpy as np
import timm
import torch
import torchvision

from detic_cli.checkpoint.convert import backbone_keys, convert_state_dict, fit_to_model
from detic_cli.checkpoint.io import read_state_dict
from detic_cli.modeling.backbone.resnet import ResNet
from detic_cli.modeling.backbone.swin import SwinTransformer, build_swin
from tests.checkpoint.conftest import randomise_norms
from tests.conftest import OriginalChannelNorm

X = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _convert_into(path, model, kind="auto"):
    conv = fit_to_model(convert_state_dict(read_state_dict(path), kind, set(model.state_dict())), model.state_dict())
    model.load_state_dict(conv.state, strict=False)
    return conv


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


@torch.no_grad()
def test_miil_timm_resnet50_21k(tmp_path, detector):
    src = randomise_norms(timm.create_model("resnet50", num_classes=11221))
    torch.save(src.state_dict(), tmp_path / "resnet50_miil_21k.pth")
    model = detector("BoxSup-C2_L_CLIP_R5021k_640b64_4x.yaml")
    conv = _convert_into(tmp_path / "resnet50_miil_21k.pth", model)
    assert conv.kind == "timm-resnet" and not backbone_keys(conv.random_init) and not conv.unused
    x = src.maxpool(src.act1(src.bn1(src.conv1(X))))
    feats = {}
    for level, stage in enumerate((src.layer1, src.layer2, src.layer3, src.layer4), start=2):
        x = feats[f"layer{level}"] = stage(x)
    out = model.backbone.bottom_up(X)
    assert set(out) == {"layer3", "layer4", "layer5"}
    for name, value in out.items():
        _close(value, feats[name])


def _torchvision_stages(src, x):
    x = src.maxpool(src.relu(src.bn1(src.conv1(x))))
    outs = {}
    for i, stage in enumerate((src.layer1, src.layer2, src.layer3, src.layer4), start=2):
        x = outs[f"res{i}"] = stage(x)
    return outs


@torch.no_grad()
def test_torchvision_resnet50_into_deformable_detr(tmp_path, detector):
    src = randomise_norms(torchvision.models.resnet50())
    torch.save(src.state_dict(), tmp_path / "resnet50-0676ba61.pth")
    model = detector("BoxSup-DeformDETR_L_R50_4x.yaml")
    conv = _convert_into(tmp_path / "resnet50-0676ba61.pth", model)
    assert conv.kind == "torchvision-resnet" and not backbone_keys(conv.random_init)
    assert conv.unused == ["fc.bias", "fc.weight"]
    expected, out = _torchvision_stages(src, X), model.detr.backbone[0].backbone(X)
    for name in ("res3", "res4", "res5"):
        _close(out[name], expected[name])


_C2_BRANCH = {"shortcut": "branch1", "conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}


def _c2_name(d2: str) -> str:
    """detectron2 -> caffe2 name (`res2_0_branch2a_bn_s`) for writing an MSRA pickle; the inverse rules."""
    m = re.match(r"^stem\.conv1\.(norm\.)?(weight|bias)$", d2)
    if m:
        return ("res_conv1_bn_" + ("s" if m.group(2) == "weight" else "b")) if m.group(1) else "conv1_w"
    m = re.match(r"^res(\d)\.(\d+)\.(\w+)\.(norm\.)?(weight|bias)$", d2)
    assert m, d2
    base = f"res{m.group(1)}_{m.group(2)}_{_C2_BRANCH[m.group(3)]}"
    return base + ("_bn_s" if m.group(5) == "weight" else "_bn_b") if m.group(4) else base + "_w"


@torch.no_grad()
def test_msra_pickle_into_c4(tmp_path, detector):
    torch.manual_seed(3)
    src = ResNet(depth=50, out_features=["res5"], stride_in_1x1=True).eval()
    for name, buf in src.named_buffers():  # caffe2 affine channels: random scale/shift, no statistics
        if name.endswith((".weight", ".bias")):
            buf.copy_(torch.rand_like(buf) + 0.5 if name.endswith("weight") else torch.randn_like(buf) * 0.1)
        elif name.endswith("running_var"):
            buf.fill_(1.0)
    blobs = {_c2_name(k): v.numpy() for k, v in src.state_dict().items() if "running" not in k}
    assert "res2_0_branch2a_w" in blobs and "res_conv1_bn_s" in blobs and "res2_0_branch1_bn_b" in blobs
    blobs |= {"fc1000_w": np.zeros((1000, 2048), np.float32), "fc1000_b": np.zeros(1000, np.float32),
              "conv1_w_momentum": np.zeros((64, 3, 7, 7), np.float32)}
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    model = detector("BoxSup_OVCOCO_CLIP_R50_1x.yaml")
    conv = _convert_into(tmp_path / "R-50.pkl", model)
    assert conv.kind == "msra-pkl" and not backbone_keys(conv.random_init)
    assert conv.unused == ["fc1000_b", "fc1000_w"]
    _close(model.roi_heads.res5(model.backbone(X)["res4"]), src(X)["res5"])


@torch.no_grad()
def test_microsoft_swin_layout(tmp_path, detector):
    torch.manual_seed(4)
    src = build_swin("T").eval()  # the Swin-B config at size T: same code path, a quarter of the weights
    sd = {k: v for k, v in src.state_dict().items() if not re.match(r"norm\d\.", k)}
    sd |= {"norm.weight": torch.ones(768), "norm.bias": torch.zeros(768), "head.weight": torch.zeros(21841, 768),
           "head.bias": torch.zeros(21841), "layers.0.blocks.1.attn_mask": torch.zeros(64, 49, 49),
           "layers.0.blocks.0.attn.relative_position_index": torch.zeros(49, 49, dtype=torch.long)}
    torch.save({"model": sd}, tmp_path / "swin_base_patch4_window7_224_22k.pth")
    model = detector("BoxSup-C2_L_CLIP_SwinB_896b32_4x.yaml", "MODEL.SWIN.SIZE=T")
    conv = _convert_into(tmp_path / "swin_base_patch4_window7_224_22k.pth", model)
    assert conv.kind == "swin" and conv.unused == ["head.bias", "head.weight", "norm.bias", "norm.weight"]
    assert sorted(backbone_keys(conv.random_init)) == [f"backbone.bottom_up.norm{i}.{p}" for i in (1, 2, 3)
                                                       for p in ("bias", "weight")]
    bottom_up = model.backbone.bottom_up
    for i in (1, 2, 3):  # the detector's own output norms start from scratch; give them the source's
        getattr(bottom_up, f"norm{i}").load_state_dict(getattr(src, f"norm{i}").state_dict())
    expected, out = src(X), bottom_up(X)
    for name in expected:
        _close(out[name], expected[name])


def test_timm_swin_layout_moves_downsample_back_a_stage():
    small = {"embed_dim": 32, "depths": (1, 1, 2, 1), "num_heads": (1, 2, 2, 4)}
    sd = timm.create_model("swin_tiny_patch4_window7_224", **small).state_dict()
    conv = convert_state_dict(sd)
    ours = {"backbone.bottom_up." + k for k in SwinTransformer(**small).state_dict() if not re.match(r"norm\d\.", k)}
    assert conv.kind == "swin" and set(conv.state) == {k for k in ours if not k.endswith("relative_position_index")}
    assert conv.state["backbone.bottom_up.layers.0.downsample.reduction.weight"].shape == (64, 128)
    assert set(conv.unused) == {"head.fc.weight", "head.fc.bias", "norm.weight", "norm.bias"}


def _official_convnext(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ConvNeXt keys -> facebookresearch/ConvNeXt keys (`convnext_tiny_22k_224.pth`)."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^stem\.", "downsample_layers.0.", k)
        k = re.sub(r"^stages\.(\d)\.downsample\.", r"downsample_layers.\1.", k)
        k = re.sub(r"^stages\.(\d)\.blocks\.", r"stages.\1.", k).replace("conv_dw", "dwconv")
        k = k.replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2").replace("head.norm", "norm")
        out[k] = v
    return out


@torch.no_grad()
def test_convnext_tiny_official_and_timm_layouts(tmp_path, detector):
    src = timm.create_model("convnext_tiny").eval()
    for p in src.parameters():  # layer scale starts at 1e-6: make the blocks matter
        if p.dim() == 1:
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.shape[0] in (96, 192, 384, 768) else 0.0))
    torch.save({"model": _official_convnext(src.state_dict())}, tmp_path / "convnext_tiny_22k_224.pth")
    model = detector("BoxSup-C2_LCOCO_CLIP_CXT21k_640b32_4x.yaml")
    conv = _convert_into(tmp_path / "convnext_tiny_22k_224.pth", model)
    assert conv.kind == "convnext" and not backbone_keys(conv.random_init)
    assert set(conv.unused) == {"norm.weight", "norm.bias", "head.fc.weight", "head.fc.bias"}
    assert convert_state_dict(src.state_dict()).state.keys() == conv.state.keys()
    for stage in list(src.stages)[1:]:  # the original's timm 0.5.4 normalises here with the unbiased variance
        stage.downsample[0] = OriginalChannelNorm(stage.downsample[0])
    x, expected = src.stem(X), {}
    for s, stage in enumerate(src.stages):
        x = expected[f"layer{s + 1}"] = stage(x)
    out = model.backbone.bottom_up(X)
    for name in ("layer2", "layer3", "layer4"):
        _close(out[name], expected[name])
