"""Inference form of the C4 heads' res5 stage: frozen BN folded into the convolutions, channels-last GEMMs.

The Res5 ROI head runs three bottleneck blocks on every proposal (1000 with the C4 configs), most of a C4
detection's time. Without gradients the stage is evaluated in (R, H, W, C) layout: every 1x1 convolution is
one `addmm` over all R * H * W positions (a 1x1 convolution with stride s reads every s-th pixel, so the
input is subsampled first), each 3x3 convolution is oneDNN's channels-last convolution on a view of the
same memory, and each FrozenBatchNorm2d is folded into its convolution's weight and bias. The result equals
the module's up to float32 rounding (~1e-6 relative).

On the CPU with NNPACK (`canvas_ready`) and stride-1 3x3 convolutions the stage runs channel-major instead,
(C, R * H * W): the 1x1 convolutions are `weight.t() @ x` GEMMs and each 3x3 convolution is one Winograd
convolution of all R maps tiled on a canvas (`layers/canvas_conv.py`, ~2x faster than oneDNN on 7x7 maps).

Project first (`run_on_features`, that path): the first block's strided 1x1 convolution and shortcut are
linear maps of the pooled features, and ROIAlign's bins are weighted sums of feature-map pixels, so the two
commute: the 1x1 weights are applied once to the (H * W) feature map (2500 pixels at 800 x 800) instead of to
the R * 7 * 7 pooled bins (49000 for 1000 proposals), and the projected map is pooled. Biases are added after
pooling (a bin's weights need not sum to 1). Same values up to float rounding (~3e-7 of the largest output).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.layers.canvas_conv import canvas_conv3x3_cm, canvas_ready
from detic_cli.layers.fused_conv import fold_conv_norm, parameter_key
from detic_cli.modeling.backbone.resnet import BottleneckBlock

__all__ = ["FoldedRes5"]

_Folded = tuple[torch.Tensor, torch.Tensor, int]  # weight, bias, stride
# Project before pooling when the pooled bins outnumber the feature map's pixels this many times (1000 C4
# proposals at 800 x 800: 49000 bins, 2500 pixels).
PROJECT_FIRST = 4


def _fold(conv: nn.Conv2d) -> _Folded:
    """(weight, bias, stride) of a conv and its FrozenBatchNorm2d `conv.norm` as one convolution (folded in
    float32 by `fold_conv_norm`). 1x1 weights come back as (C_in, C_out) GEMM operands; 3x3 weights as
    channels-last (C_out, C_in, 3, 3)."""
    weight, bias = fold_conv_norm(conv, conv.norm, precision=torch.float32)
    if conv.kernel_size == (1, 1):
        weight = weight.flatten(1).t().contiguous()
    else:
        weight = weight.contiguous(memory_format=torch.channels_last)
    return weight, bias, int(conv.stride[0])


def _foldable(block: nn.Module) -> bool:
    if not isinstance(block, BottleneckBlock):
        return False
    convs = [block.conv1, block.conv2, block.conv3] + ([block.shortcut] if block.shortcut is not None else [])
    return (all(isinstance(c.norm, FrozenBatchNorm2d) and c.bias is None and c.groups == 1 for c in convs)
            and all(c.kernel_size == (1, 1) and c.padding == (0, 0) for c in convs if c is not block.conv2)
            and block.conv2.kernel_size == (3, 3) and block.conv2.padding == block.conv2.dilation)


def _pointwise(x: torch.Tensor, folded: _Folded, out: torch.Tensor | None = None) -> torch.Tensor:
    """A folded 1x1 convolution of (R, H, W, C) `x` -> (R, H', W', C_out); `out` (same shape) is added to."""
    weight, bias, stride = folded
    if stride > 1:
        x = x[:, ::stride, ::stride]
    r, h, w, c = x.shape
    flat = x.reshape(-1, c)
    if out is None:  # explicit C_out: a view of 0 regions cannot infer it
        return torch.addmm(bias, flat, weight).view(r, h, w, weight.shape[1])
    return out.view(-1, weight.shape[1]).addmm_(flat, weight).add_(bias).view(r, h, w, weight.shape[1])


def _pointwise_cm(x: torch.Tensor, folded: _Folded, out: torch.Tensor | None = None) -> torch.Tensor:
    """A folded stride-1 1x1 convolution of channel-major `x` (C, N) -> (C_out, N); `out` (same shape) is
    added to."""
    weight, bias, _ = folded
    if out is None:
        return torch.addmm(bias[:, None], weight.t(), x)
    return out.addmm_(weight.t(), x).add_(bias[:, None])


class FoldedRes5:
    """A snapshot of a res5 `stage` (an nn.Sequential of BottleneckBlocks with FrozenBatchNorm2d) for inference.

    `matches(stage)` tells whether the snapshot still reflects the stage's parameters (same tensors, not
    modified in place since); `__call__` maps pooled regions (R, C_in, H, W) -> (R, C_out) spatial means.
    """

    def __init__(self, stage: nn.Sequential) -> None:
        self._key = parameter_key(stage)
        with torch.no_grad():
            self.blocks = [[_fold(b.conv1), b.conv2, _fold(b.conv2), _fold(b.conv3),
                            _fold(b.shortcut) if b.shortcut is not None else None] for b in stage]
        # the canvas path: every 3x3 conv stride 1, padding 1 (NNPACK wants contiguous NCHW weights)
        self.canvas = all(tuple(b[1].stride) == (1, 1) and tuple(b[1].padding) == (1, 1) for b in self.blocks)
        self.canvas_weights = [b[2][0].contiguous() for b in self.blocks] if self.canvas else []
        # the first block's 1x1 conv and shortcut read every s-th pixel (stride in the 1x1 conv, as the C4
        # configs' STRIDE_IN_1X1): subsample the pooled regions once, then run them with stride 1
        first = self.blocks[0]
        self.subsample = first[0][2] if first[4] is not None and first[4][2] == first[0][2] else 1
        if self.subsample > 1:
            first[0] = (*first[0][:2], 1)
            first[4] = (*first[4][:2], 1)
        # project first: the first block's conv1 and shortcut weights side by side (C_in, C_mid + C_out), and
        # the shortcut's bias joined to conv3's (both are added to the same sum)
        projects = self.canvas and first[4] is not None and all(b[4] is None for b in self.blocks[1:])
        self.projection = torch.cat([first[0][0], first[4][0]], 1).contiguous() if projects else None
        self.first_bias = first[3][1] + first[4][1] if projects else None

    @staticmethod
    def supported(stage: nn.Module) -> bool:
        return isinstance(stage, nn.Sequential) and len(stage) > 0 and all(_foldable(b) for b in stage)

    def matches(self, stage: nn.Module) -> bool:
        return self._key == parameter_key(stage)

    def __call__(self, pooled: torch.Tensor) -> torch.Tensor:
        """(R, C_in, H, W) float -> (R, C_out): res5 then the mean over space, as `stage(pooled).mean((2, 3))`."""
        step = self.subsample
        return self.run_subsampled(pooled[:, :, ::step, ::step].permute(0, 2, 3, 1))

    def run_on_features(self, features: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor],
                        bins: int) -> torch.Tensor:
        """features (N, C_in, H, W); `pool` maps an (N, C, H, W) map to its (R, S, S, C) pooled regions at the bins
        the first block reads (every `subsample`-th, channels-last, contiguous); `bins` = R * S * S. Returns
        (R, C_out) as `run_subsampled(pool(features))`. On the canvas path, when the bins outnumber the map's
        pixels `PROJECT_FIRST` times (the GEMM then shrinks more than pooling 2.5x the channels costs), the
        first block's 1x1 weights are applied to the map before pooling."""
        n, c, h, w = features.shape
        if self.projection is None or bins < PROJECT_FIRST * n * h * w or not canvas_ready(features):
            return self.run_subsampled(pool(features))
        table = features.permute(0, 2, 3, 1).reshape(-1, c) @ self.projection  # (N * H * W, C_mid + C_out)
        pooled = pool(table.view(n, h, w, -1).permute(0, 3, 1, 2))
        try:
            return self._run_projected(pooled)
        except RuntimeError:  # NNPACK refuses some sizes: the unprojected path, which falls back to oneDNN
            return self.run_subsampled(pool(features))

    def run_subsampled(self, x: torch.Tensor) -> torch.Tensor:
        """(R, H / subsample, W / subsample, C_in) channels-last pooled regions, already subsampled (every
        `subsample`-th row and column) -> (R, C_out) as `__call__`."""
        if self.canvas and canvas_ready(x) and x.shape[0] > 0 and x.shape[1] == x.shape[2]:
            try:
                return self._run_channel_major(x)
            except RuntimeError:  # NNPACK refuses some sizes (e.g. out of workspace): the oneDNN path below
                pass
        source = x
        x = x.contiguous()
        if x.data_ptr() == source.data_ptr():
            x = x.clone()  # the residual sums below write into x
        for conv1, conv2, folded2, conv3, shortcut in self.blocks:
            y = _pointwise(x, conv1).relu_()
            weight, bias, _ = folded2
            y = F.conv2d(y.permute(0, 3, 1, 2), weight, bias, stride=conv2.stride, padding=conv2.padding,
                         dilation=conv2.dilation).relu_().permute(0, 2, 3, 1)
            residual = _pointwise(x, shortcut) if shortcut is not None else x
            x = _pointwise(y, conv3, out=residual).relu_()
        return x.mean(dim=(1, 2))

    def _run_projected(self, pooled: torch.Tensor) -> torch.Tensor:
        """(R, S, S, C_mid + C_out) pooled projections (`run_on_features`) -> (R, C_out); the first block's
        conv1 output (+ bias) goes onto the canvas, its shortcut output is the residual conv3 adds into."""
        r, s = pooled.shape[0], pooled.shape[1]
        flat = pooled.view(-1, pooled.shape[-1])
        width = self.blocks[0][0][1].numel()
        y = torch.add(flat[:, :width], self.blocks[0][0][1]).t()  # (C_mid, N) view, ReLU'd onto the canvas
        canvases: dict = {}
        y = canvas_conv3x3_cm(y.view(-1, r, s, s), self.canvas_weights[0], self.blocks[0][2][1], relu=True,
                              relu_input=True, canvases=canvases)
        cur = flat[:, width:].t().addmm_(self.blocks[0][3][0].t(), y.view(y.shape[0], -1))
        cur = cur.add_(self.first_bias[:, None]).relu_()  # (C_out, N), a view of `pooled`
        return self._canvas_blocks(cur, r, s, start=1, canvases=canvases)

    def _run_channel_major(self, x: torch.Tensor) -> torch.Tensor:
        """`run_subsampled` through the canvas: (R, S, S, C_in) -> (R, C_out), activations (C, R * S * S)."""
        r, s, _, c = x.shape
        return self._canvas_blocks(x.reshape(-1, c).t(), r, s, caller=x)  # a (C_in, N) view: GEMMs read it transposed

    def _canvas_blocks(self, cur: torch.Tensor, r: int, s: int, *, start: int = 0, caller: torch.Tensor | None = None,
                       canvases: dict | None = None) -> torch.Tensor:
        """Blocks `start`.. on channel-major activations `cur` (C, R * S * S) -> (R, C_out) spatial means. Residual
        sums are written in place, never into `caller`'s memory; `canvases`: the zeroed canvases of the 3x3 convs."""
        canvases = {} if canvases is None else canvases
        for (conv1, _, folded2, conv3, shortcut), weight2 in zip(self.blocks[start:], self.canvas_weights[start:]):
            y = _pointwise_cm(cur, conv1)  # its ReLU is applied as it is copied onto the canvas
            y = canvas_conv3x3_cm(y.view(-1, r, s, s), weight2, folded2[1], relu=True, relu_input=True,
                                  canvases=canvases)
            if shortcut is not None:
                residual = _pointwise_cm(cur, shortcut)
            elif caller is not None and cur.data_ptr() == caller.data_ptr():
                residual = cur.clone(memory_format=torch.contiguous_format)
            else:
                residual = cur
            cur = _pointwise_cm(y.view(y.shape[0], -1), conv3, out=residual).relu_()
        return cur.view(cur.shape[0], r, s * s).mean(dim=2).t().contiguous()
