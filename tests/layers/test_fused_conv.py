"""FusedConv: folded norm + prepacked oneDNN convolution equals conv -> norm (+ residual) (+ ReLU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.layers.fused_conv import FusedConv, foldable_norm, onednn_ready, parameter_key

needs_onednn = pytest.mark.skipif(not onednn_ready(), reason="torch built without oneDNN")


def _randomized(norm: nn.Module) -> nn.Module:
    with torch.no_grad():
        norm.running_mean.normal_(0, 0.2)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_(0, 0.2)
    return norm.eval()


@needs_onednn
@pytest.mark.parametrize("norm_kind", ["frozen", "bn", "none"])
@pytest.mark.parametrize("stride", [1, 2])
def test_fused_equals_conv_norm_relu_residual(norm_kind, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, stride=stride, padding=1, bias=norm_kind == "none")
    norm = {"frozen": FrozenBatchNorm2d(16), "bn": nn.BatchNorm2d(16), "none": None}[norm_kind]
    norm = _randomized(norm) if norm is not None else None
    x = torch.randn(2, 8, 13, 18)
    with torch.no_grad():
        y = conv(x)
        y = norm(y) if norm is not None else y
        residual = torch.randn_like(y)
        fused = FusedConv(conv, norm)
        torch.testing.assert_close(fused(x), y, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused(x, relu=True), F.relu(y), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused(x, relu=True, residual=residual), F.relu(y + residual), rtol=1e-5,
                                   atol=1e-5)
        torch.testing.assert_close(fused(x, residual=residual), y + residual, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_weights_packed_from_the_second_call_at_a_shape():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3, padding=1)
    fused = FusedConv(conv)
    with torch.no_grad():
        small, large = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 12, 10)
        first = fused(small)
        assert fused._packed[tuple(small.shape)] is None  # seen once: the plain weight was used
        torch.testing.assert_close(fused(small), first, rtol=1e-6, atol=1e-6)
        packed = fused._packed[tuple(small.shape)]
        assert packed is not None and fused.packed_weight(small.shape) is packed
        fused(large)
        torch.testing.assert_close(fused(large), conv(large), rtol=1e-5, atol=1e-5)  # packed for this size
        assert fused.packed_weight(small.shape) is packed  # reused, not repacked
        for size in range(13, 18):  # more shapes than remembered: the least recently used goes
            fused(torch.randn(1, 4, size, size))
        assert len(fused._packed) == 4 and tuple(small.shape) not in fused._packed
        torch.testing.assert_close(fused(small), conv(small), rtol=1e-5, atol=1e-5)


def test_fallback_plain_ops_with_gradient_and_weights_untouched():
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 1, bias=False), _randomized(FrozenBatchNorm2d(4))
    before = conv.weight.detach().clone()
    fused = FusedConv(conv, norm)
    x = torch.randn(1, 3, 5, 5, requires_grad=True)
    y = fused(x, relu=True)
    assert y.requires_grad  # the ordinary operators ran (oneDNN's fused op has no autograd)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(y, F.relu(norm(conv(x))), rtol=1e-5, atol=1e-6)
    assert torch.equal(conv.weight, before)


def test_foldable_norm_and_parameter_key():
    assert foldable_norm(None) and foldable_norm(FrozenBatchNorm2d(4)) and foldable_norm(nn.BatchNorm2d(4).eval())
    assert not foldable_norm(nn.BatchNorm2d(4)) and not foldable_norm(nn.GroupNorm(2, 4))
    conv = nn.Conv2d(2, 2, 1)
    key = parameter_key(conv)
    assert parameter_key(conv) == key
    with torch.no_grad():
        conv.weight.add_(1)
    assert parameter_key(conv) != key
    with pytest.raises(ValueError, match="cannot fold"):
        FusedConv(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
