"""FoldedRes5 (the C4 heads' inference res5) against the res5 stage it was folded from."""

from __future__ import annotations

import pytest
import torch

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.modeling.backbone.resnet import make_stage
from detic_cli.modeling.roi_heads import res5_inference
from detic_cli.modeling.roi_heads.res5_inference import FoldedRes5


def _stage(stride_in_1x1: bool, norm: str = "FrozenBN") -> torch.nn.Sequential:
    torch.manual_seed(0)
    stage = make_stage(num_blocks=2, in_channels=16, out_channels=32, bottleneck_channels=8, first_stride=2,
                       stride_in_1x1=stride_in_1x1, norm=norm).eval()
    for module in stage.modules():
        if isinstance(module, FrozenBatchNorm2d):  # statistics far from the identity, so folding is exercised
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return stage


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_folded_equals_stage_then_mean(stride_in_1x1):
    stage = _stage(stride_in_1x1)
    assert FoldedRes5.supported(stage)
    x = torch.randn(5, 16, 14, 14)
    with torch.no_grad():
        expected = stage(x).mean(dim=[2, 3])
        got = FoldedRes5(stage)(x)
    assert got.shape == (5, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_snapshot_notices_changed_weights():
    stage = _stage(True)
    folded = FoldedRes5(stage)
    assert folded.matches(stage)
    with torch.no_grad():
        stage[0].conv2.weight.mul_(2.0)
    assert not folded.matches(stage)
    x = torch.randn(2, 16, 14, 14)
    with torch.no_grad():
        torch.testing.assert_close(FoldedRes5(stage)(x), stage(x).mean(dim=[2, 3]), rtol=1e-5, atol=1e-5)


def test_canvas_path_equals_stage_and_keeps_its_input(monkeypatch):
    """Stride-1 3x3 convs (STRIDE_IN_1X1) run channel-major through the canvas; strided ones never do."""
    import detic_cli.modeling.roi_heads.res5_inference as res5_inference

    calls = []
    original = res5_inference.canvas_conv3x3_cm
    monkeypatch.setattr(res5_inference, "canvas_conv3x3_cm", lambda *a, **k: calls.append(1) or original(*a, **k))
    stage = _stage(True)
    folded = FoldedRes5(stage)
    assert folded.canvas and not FoldedRes5(_stage(False)).canvas
    x = torch.randn(7, 16, 14, 14)
    pooled = x[:, :, ::2, ::2].permute(0, 2, 3, 1).contiguous()
    before = pooled.clone()
    with torch.no_grad():
        expected = stage(x).mean(dim=[2, 3])
        got = folded.run_subsampled(pooled)
        assert len(calls) == (2 if res5_inference.canvas_ready(pooled) else 0)
    assert got.shape == (7, 32) and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(pooled, before)


def test_unfrozen_norms_are_not_folded():
    assert not FoldedRes5.supported(_stage(True, norm="BN"))


def _pool(rois: torch.Tensor, step: int = 2):
    from detic_cli.layers.roi_align_nhwc import roi_align_nhwc

    return lambda table: roi_align_nhwc(table, rois, 14, 0.25, 0, True, bin_step=step)


def _rois(count: int = 48) -> torch.Tensor:
    """Image index + XYXY boxes on a 2-picture 64 x 64 batch: inside, across the border, tiny, empty, then
    random ones up to `count` (48 regions x 49 bins outnumber the 2 x 16 x 16 map's pixels 4.6 times)."""
    fixed = torch.tensor([[0, 4.0, 6.0, 50.0, 40.0], [1, -8.0, 10.0, 30.0, 70.0], [0, 20.0, 20.0, 21.5, 22.0],
                          [1, 33.0, 12.0, 33.0, 12.0], [0, 0.0, 0.0, 63.0, 63.0]])
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(count - len(fixed), 2, 2, generator=generator) * 64
    boxes = torch.cat([corners.min(1).values, corners.max(1).values], 1)
    images = torch.randint(0, 2, (count - len(fixed), 1), generator=generator).float()
    return torch.cat([fixed, torch.cat([images, boxes], 1)])[:count]


def test_projecting_before_pooling_equals_pooling_first():
    """`run_on_features`: the first block's 1x1 weights on the feature map, then ROIAlign, then res5 = ROIAlign
    then the stage (its bias after pooling: bins at the border and empty regions included)."""
    stage = _stage(True)
    folded = FoldedRes5(stage)
    features = torch.randn(2, 16, 16, 16) * 3 + 1
    rois, channels = _rois(), []
    with torch.no_grad():
        expected = folded.run_subsampled(_pool(rois)(features))
        reference = stage(torchvision_pooled(features, rois)).mean(dim=[2, 3])
        got = folded.run_on_features(features, lambda t: channels.append(t.shape[1]) or _pool(rois)(t),
                                     bins=len(rois) * 49)
        projected = res5_inference.canvas_ready(features)
    # the pooled map is the projection: conv1's 8 channels and the shortcut's 32 side by side
    assert channels == ([8 + 32] if projected else [16]) and got.shape == (48, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)


def test_projection_needs_a_first_shortcut_and_the_canvas():
    stage = _stage(False)  # strided 3x3: no canvas, so no projection path
    folded = FoldedRes5(stage)
    features = torch.randn(2, 16, 16, 16)
    calls, pool = [], _pool(_rois(), folded.subsample)
    with torch.no_grad():
        got = folded.run_on_features(features, lambda t: calls.append(t.shape[1]) or pool(t), bins=48 * 196)
    assert calls == [16]  # pooled the raw 16-channel map once
    torch.testing.assert_close(got, stage(torchvision_pooled(features, _rois())).mean(dim=[2, 3]), rtol=1e-5,
                               atol=1e-5)


def torchvision_pooled(features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import roi_align

    return roi_align(features, rois, 14, 0.25, 0, True)


@pytest.mark.parametrize("count", [0, 5])
def test_few_regions_are_pooled_before_the_projection(count):
    """Fewer bins than `PROJECT_FIRST` times the map's pixels (or none): the raw map is pooled, as before."""
    stage = _stage(True)
    folded = FoldedRes5(stage)
    features, rois, channels = torch.randn(2, 16, 16, 16), _rois(48)[:count], []
    with torch.no_grad():
        got = folded.run_on_features(features, lambda t: channels.append(t.shape[1]) or _pool(rois)(t),
                                     bins=count * 49)
        expected = stage(torchvision_pooled(features, rois)).mean(dim=[2, 3])
    assert channels == [16] and got.shape == (count, 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
