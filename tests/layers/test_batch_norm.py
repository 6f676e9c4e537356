"""FrozenBatchNorm2d computes what detectron2's does: the fused kernel at inference, x * scale + shift with grad."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detic_cli.layers.batch_norm import FrozenBatchNorm2d


def _frozen(channels: int = 6) -> FrozenBatchNorm2d:
    g = torch.Generator().manual_seed(0)
    bn = FrozenBatchNorm2d(channels)
    bn.weight.copy_(torch.rand(channels, generator=g) + 0.5)
    bn.bias.copy_(torch.randn(channels, generator=g))
    bn.running_mean.copy_(torch.randn(channels, generator=g))
    bn.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return bn


def test_inference_uses_the_fused_batch_norm_kernel():
    bn = _frozen()
    x = torch.randn(2, 6, 9, 11) * 30
    with torch.no_grad():
        got = bn(x)
    want = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=1e-5)
    assert torch.equal(got, want)  # bit for bit, as detectron2 computes it without grad
    manual = (x - bn.running_mean.view(1, -1, 1, 1)) / (bn.running_var.view(1, -1, 1, 1) + 1e-5).sqrt()
    torch.testing.assert_close(got, manual * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))


def test_with_grad_the_input_gets_gradients_and_the_statistics_none():
    bn = _frozen()
    x = (torch.randn(1, 6, 4, 5) * 30).requires_grad_()
    y = bn(x)
    torch.testing.assert_close(y.detach(), bn(x.detach()), rtol=1e-6, atol=1e-5)
    y.sum().backward()
    scale = bn.weight * (bn.running_var + 1e-5).rsqrt()
    torch.testing.assert_close(x.grad, scale.view(1, -1, 1, 1).expand_as(x))
    assert not any(t.requires_grad for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var))
