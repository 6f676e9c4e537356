"""CPU inference convolutions with batch norm folded in and oneDNN weights prepacked (`FusedConv`).

A `FusedConv` is a snapshot of one convolution and the normalisation after it: the norm (FrozenBatchNorm2d, or
nn.BatchNorm2d in eval mode) is folded into the weight and bias in float64 and cast to float32, and from the
second call at an input shape on the weight is prepacked for that shape into oneDNN's layout, so each call is
one `torch.ops.mkldnn._convolution_pointwise` with the ReLU and the residual sum fused in. The folded result
differs from conv -> norm by float32 rounding (~1e-6 relative; benchmarks/README.md gives the effect on the
FPN).

A snapshot never changes the module's weights; `matches` tells whether the parameters it was taken from are
still the same tensors, unmodified (the owner rebuilds it otherwise). It is meant for `fast_path_allowed`
inputs (CPU float32, no gradient, no autocast, not tracing); other inputs get the same folded arithmetic
through the ordinary operators.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.layers.fast_conv import fast_path_allowed

__all__ = ["FusedConv", "foldable_norm", "onednn_ready", "parameter_key", "use_fused_convolutions"]

_PACKED_SHAPES = 4  # packed weights kept per conv (one per recent input shape, least recently used dropped)


@cache
def onednn_ready() -> bool:
    """Whether oneDNN (mkldnn) and its fused convolution operators are built into this torch."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def foldable_norm(norm: nn.Module | None) -> bool:
    """A norm a convolution can absorb: none, FrozenBatchNorm2d, or an affine-or-not BatchNorm2d in eval mode
    with running statistics (in training mode it normalises by batch statistics and updates them)."""
    if norm is None or isinstance(norm, FrozenBatchNorm2d):
        return True
    return (isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.track_running_stats
            and norm.running_mean is not None)


def parameter_key(module: nn.Module) -> tuple:
    """Identity and in-place version of every parameter and buffer of `module`: equal keys mean the same
    tensors, unmodified (an optimizer step, `load_state_dict` or `.to()` changes the key)."""
    return tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *module.buffers()))


def fold_conv_norm(conv: nn.Conv2d, norm: nn.Module | None,
                   precision: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv -> norm as one convolution, folded in `precision`, returned in float32.

    float64 for the backbones (measured closest to the unfolded features); C4's res5 head folds in float32,
    whose rounding landed nearer the original's detections (benchmarks/README.md)."""
    weight = conv.weight.detach().to(precision)
    bias = conv.bias.detach().to(precision) if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if norm is not None:
        scale = (norm.running_var.to(precision) + norm.eps).rsqrt()
        if norm.weight is not None:
            scale = scale * norm.weight.detach().to(precision)
        shift = -norm.running_mean.to(precision) * scale
        if norm.bias is not None:
            shift = shift + norm.bias.detach().to(precision)
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = bias * scale + shift
    return weight.float().contiguous(), bias.float().contiguous()


class FusedConv:
    """conv -> optional norm (+ residual) (+ ReLU) as one prepacked oneDNN convolution, for inference.

    `conv`: an nn.Conv2d with zero padding; `norm`: see `foldable_norm`.
    `__call__(x, relu=, residual=)`: x (N, C_in, H, W) float32 -> relu?(norm(conv(x)) + residual?), residual
    (N, C_out, H', W') of the output's shape. On the fast path the convolution runs in channels-last memory
    (oneDNN's native layout there; NCHW inputs cost a reorder per call) and the result is channels-last:
    chains of FusedConvs stay in it, callers convert their final outputs with `.contiguous()`.
    Weights are copied, never written.
    """

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None = None) -> None:
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or not foldable_norm(norm):
            raise ValueError(f"FusedConv: cannot fold {conv} with {norm}")
        with torch.no_grad():
            self.weight, self.bias = fold_conv_norm(conv, norm)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self._packed: OrderedDict[tuple[int, ...], torch.Tensor | None] = OrderedDict()  # None: seen once

    def packed_weight(self, shape: torch.Size) -> torch.Tensor:
        """The weight for inputs of `shape`: the first time a shape is seen the plain weight (oneDNN reorders
        it during the call), from the second time on the weight reordered once into oneDNN's layout for that
        shape. Packing costs about as much as it saves in one call, so a stream of ever new sizes (a folder
        of photos) does not pay for it; 4 shapes are remembered, the least recently used dropped."""
        key = tuple(shape)
        if key not in self._packed:
            self._packed[key] = None
            packed = None
        else:
            self._packed.move_to_end(key)
            packed = self._packed[key]
            if packed is None:
                packed = torch.ops.mkldnn._reorder_convolution_weight(self.weight, self.padding, self.stride,
                                                                     self.dilation, self.groups, list(key))
                self._packed[key] = packed
        if len(self._packed) > _PACKED_SHAPES:
            self._packed.popitem(last=False)
        return packed if packed is not None else self.weight

    def __call__(self, x: torch.Tensor, relu: bool = False, residual: torch.Tensor | None = None,
                 into_residual: bool = False) -> torch.Tensor:
        """conv(x) [+ residual] [then ReLU]. `into_residual`: the result may be written over `residual` (the
        caller holds no other reference to it), which saves allocating (and page-faulting) a new output."""
        if not (fast_path_allowed(x) and onednn_ready() and self.weight.device == x.device):
            return self.plain(x, relu=relu, residual=residual)
        x = x.contiguous(memory_format=torch.channels_last)
        weight = self.packed_weight(x.shape)
        unary = "relu" if relu else "none"
        args = (self.bias, self.padding, self.stride, self.dilation, self.groups)
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(x, weight, *args, unary, [], "")
        post = ("add", None, "relu" if relu else None, [], "")
        if into_residual and residual.is_contiguous(memory_format=torch.channels_last) and residual.dtype == x.dtype:
            return torch.ops.mkldnn._convolution_pointwise_.binary(residual, x, weight, *args, *post)
        residual = residual.contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, weight, *args, *post)

    def plain(self, x: torch.Tensor, relu: bool = False, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The same folded convolution through the ordinary operators (any device, dtype or autograd mode)."""
        weight, bias = self.weight.to(x.device, x.dtype), self.bias.to(x.device, x.dtype)
        y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        if residual is not None:
            y = y + residual
        return F.relu(y) if relu else y


def use_fused_convolutions(model: nn.Module, enabled: bool = True) -> int:
    """Switch every submodule of `model` that has an inference form with fused convolutions (an attribute
    `fused_inference`: the ResNet backbones) to it, or back (`enabled` False); returns how many.
    The forms run only for `fast_path_allowed` inputs; weights and training are unaffected."""
    parts = [m for m in model.modules() if hasattr(m, "fused_inference")]
    for part in parts:
        part.fused_inference = enabled
    return len(parts)
