"""The fused inference form of the ResNet backbones equals the modules' own forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detic_cli.layers.fused_conv import onednn_ready, use_fused_convolutions
from detic_cli.modeling.backbone.resnet import ResNet
from detic_cli.modeling.backbone.timm_resnet import TimmResNet

pytestmark = pytest.mark.skipif(not onednn_ready(), reason="torch built without oneDNN")


def _randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial frozen statistics, so that folding them into the convolutions matters."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buffer.normal_(0, 0.2)
        for module in model.modules():
            if hasattr(module, "running_var") and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    return model.eval()


def _both(model: nn.Module, x: torch.Tensor) -> tuple[dict, dict]:
    """(own forward, fused forward) outputs, without gradient."""
    with torch.no_grad():
        use_fused_convolutions(model, False)
        own = model(x)
        assert use_fused_convolutions(model) >= 1
        fused = model(x)
    return own, fused


def assert_fused_matches(own: dict, fused: dict) -> None:
    assert own.keys() == fused.keys()
    for name in own:
        scale = own[name].std().item()
        torch.testing.assert_close(fused[name], own[name], rtol=1e-4, atol=1e-4 * scale, msg=name)


@pytest.fixture(scope="module")
def timm_r18() -> TimmResNet:
    return _randomize_norms(TimmResNet(base_name="resnet18", out_levels=[3, 4, 5]))


def test_timm_resnet18_fused_equals_forward(timm_r18):
    own, fused = _both(timm_r18, torch.randn(1, 3, 64, 96))
    assert_fused_matches(own, fused)
    assert timm_r18._fused is not None


def test_detectron2_bottleneck_resnet_fused_equals_forward():
    model = _randomize_norms(ResNet(depth=50, stem_out_channels=8, res2_out_channels=32, width_per_group=8,
                                    out_features=["stem", "res2", "res3", "res4"], norm="BN"))
    own, fused = _both(model, torch.randn(2, 3, 48, 40))
    assert_fused_matches(own, fused)
    basic = _randomize_norms(ResNet(depth=18, res2_out_channels=64, stem_out_channels=16,
                                    out_features=["res3", "res5"]))
    assert_fused_matches(*_both(basic, torch.randn(1, 3, 64, 64)))


def test_sums_written_in_place_never_touch_a_returned_feature():
    # res2's first block has an identity shortcut: its input is the returned "stem" feature (must stay as is),
    # while later blocks write their residual sums over their own inputs.
    model = _randomize_norms(ResNet(depth=18, res2_out_channels=64, stem_out_channels=64,
                                    out_features=["stem", "res2", "res3"]))
    own, fused = _both(model, torch.randn(1, 3, 64, 64))
    assert_fused_matches(own, fused)
    assert model._fused is not None


def test_snapshot_follows_weight_changes(timm_r18):
    x = torch.randn(1, 3, 64, 64)
    _both(timm_r18, x)
    before = timm_r18._fused
    with torch.no_grad():
        timm_r18.base.layer2[0].conv1.weight.mul_(1.5)  # as an optimizer step would, in place
        timm_r18.base.bn1.running_mean.add_(0.1)
    own, fused = _both(timm_r18, x)
    assert timm_r18._fused is not before
    assert_fused_matches(own, fused)


def test_gradient_training_mode_and_unfused_keep_the_modules_forward():
    model = _randomize_norms(ResNet(depth=18, res2_out_channels=64, stem_out_channels=16, out_features=["res3"],
                                    norm="BN"))
    use_fused_convolutions(model)
    x = torch.randn(1, 3, 32, 32)
    model(x)["res3"].sum().backward()  # with gradient: the modules run, the weights get gradients
    assert model._fused is None and model.stem.conv1.weight.grad is not None
    model.train()  # BatchNorm in training mode normalises by batch statistics: not foldable
    with torch.no_grad():
        running = model.stem.conv1.norm.running_mean.clone()
        model(x)
    assert model._fused is None
    assert not torch.equal(model.stem.conv1.norm.running_mean, running)  # the module's own BN ran
