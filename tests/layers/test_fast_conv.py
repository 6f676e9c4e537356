"""The CPU inference kernels give the ordinary operators' results (to float32 rounding), only without gradient."""

from __future__ import annotations

import torch
from torch import nn

from detic_cli.layers.fast_conv import (
    conv3x3,
    deconv2x2_relu_pointwise,
    fast_path_allowed,
    winograd_pays,
)
from detic_cli.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead


def _filled(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.1)
    return module.eval()


def test_winograd_conv_matches_the_direct_convolution():
    conv = _filled(nn.Conv2d(8, 6, 3, padding=1))
    x = torch.randn(6, 8, 14, 14)  # the mask head's ROI size (Winograd rounding: ~1e-6 of the values here)
    with torch.no_grad():
        assert torch.allclose(conv3x3(conv, x), conv(x), rtol=1e-4, atol=1e-5)
    x.requires_grad_(True)
    assert conv3x3(conv, x).requires_grad  # with gradient: the ordinary convolution


def test_small_maps_take_the_direct_convolution(monkeypatch):
    calls = []
    nnpack = torch._nnpack_spatial_convolution
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", lambda *a: calls.append(a[0].shape) or nnpack(*a))
    conv = _filled(nn.Conv2d(8, 6, 3, padding=1))
    small, large = torch.randn(5, 8, 14, 14), torch.randn(1, 8, 40, 40)  # 980 and 1600 output positions
    assert not winograd_pays(small) and winograd_pays(large)
    with torch.no_grad():
        assert torch.equal(conv3x3(conv, small), conv(small))  # oneDNN: the very same kernel as the module's
        conv3x3(conv, large)
    assert calls == ([large.shape] if torch.backends.nnpack.is_available() else [])


def test_deconv_gemm_and_pointwise_match_the_modules():
    deconv, pred = _filled(nn.ConvTranspose2d(8, 5, 2, stride=2)), _filled(nn.Conv2d(5, 2, 1))
    x = torch.randn(3, 8, 4, 6)
    with torch.no_grad():
        expected = pred(torch.relu(deconv(x)))
        got = deconv2x2_relu_pointwise(deconv, pred, x)
    assert got.shape == expected.shape == (3, 2, 8, 12)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_deconv_and_pointwise_give_the_same_values_in_any_chunk_of_rois():
    deconv, pred = _filled(nn.ConvTranspose2d(256, 256, 2, stride=2)), _filled(nn.Conv2d(256, 1, 1))
    x = torch.randn(37, 256, 14, 14).relu_()  # the mask head's shapes, a count no chunk size divides
    with torch.no_grad():
        whole = deconv2x2_relu_pointwise(deconv, pred, x, rois_per_chunk=len(x))
        for rois in (1, 4, 16):
            assert torch.equal(deconv2x2_relu_pointwise(deconv, pred, x, rois_per_chunk=rois), whole)


def test_fast_path_only_without_gradient_on_cpu_float32():
    x = torch.randn(1, 2, 3, 3)
    assert not fast_path_allowed(x)  # grad mode on (training)
    with torch.no_grad():
        assert fast_path_allowed(x)
        assert not fast_path_allowed(x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fast_path_allowed(x)


def test_mask_head_inference_path_matches_and_training_path_keeps_gradient():
    head = _filled(MaskRCNNConvUpsampleHead(in_channels=8, conv_dim=16, num_conv=2))
    x = torch.randn(4, 8, 7, 7)
    trained = head(x)
    assert trained.requires_grad and trained.shape == (4, 1, 14, 14)
    with torch.no_grad():
        fast = head(x)
    assert torch.allclose(fast, trained.detach(), rtol=1e-5, atol=1e-6)


class _Head(nn.Sequential):
    winograd_convolutions = True


def test_use_winograd_patches_only_opted_in_parts_and_is_undone():
    from detic_cli.layers.fast_conv import restore_convolutions, use_winograd

    head = _filled(_Head(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1)))
    model = nn.Sequential(_filled(nn.Conv2d(8, 8, 3, padding=1)), head).eval()
    x = torch.randn(2, 8, 14, 14)
    with torch.no_grad():
        expected = model(x)
    assert use_winograd(model) == 1 == use_winograd(model)  # the stride-2 conv and the un-flagged one stay
    assert "_conv_forward" in head[0].__dict__ and "_conv_forward" not in model[0].__dict__
    with torch.no_grad():
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-5)
    assert model(x).requires_grad  # training path: the ordinary convolution, with gradient
    assert set(model.state_dict()) == {"0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.2.weight", "1.2.bias"}
    restore_convolutions(model)
    assert "_conv_forward" not in head[0].__dict__
