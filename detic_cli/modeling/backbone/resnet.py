"""detectron2-layout ResNet (MSRA or torchvision strides), state-dict compatible with its checkpoints.

Keys: `stem.conv1.weight`, `stem.conv1.norm.*`, `resN.M.{conv1,conv2,conv3,shortcut}.weight` and
`.norm.*` (BasicBlock for depth 18/34: `conv1`, `conv2`, `shortcut`). Stage `resN` has stride 2**N
(res5 stride 16 when dilated). Inputs are (B, 3, H, W) normalised images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.fused_resnet import FusedResNet, refreshed

__all__ = ["BasicBlock", "BasicStem", "BottleneckBlock", "ConvNorm", "ResNet", "get_norm", "make_stage"]

_BLOCKS_PER_STAGE = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
                     152: [3, 8, 36, 3]}
_STAGE_INDEX = {"stem": 1, "res2": 2, "res3": 3, "res4": 4, "res5": 5}


def get_norm(norm: str, channels: int) -> nn.Module | None:
    """Normalisation layer by detectron2 name: "FrozenBN", "BN", "SyncBN", "GN" (32 groups) or "" (none)."""
    if not norm:
        return None
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        return nn.GroupNorm(32, channels)
    raise ValueError(f"unknown norm {norm!r}: expected FrozenBN, BN, SyncBN, GN or ''")


class ConvNorm(nn.Conv2d):
    """nn.Conv2d followed by an optional `norm` submodule (keys `weight`, `norm.*`), as detectron2's Conv2d."""

    def __init__(self, *args, norm: nn.Module | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return self.norm(x) if self.norm is not None else x


def _msra_fill(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _freeze(module: nn.Module) -> nn.Module:
    """Stop gradients and turn every BatchNorm into FrozenBatchNorm2d; returns the (possibly new) module."""
    for p in module.parameters():
        p.requires_grad_(False)
    return FrozenBatchNorm2d.convert(module)


class BasicStem(nn.Module):
    """7x7/2 conv + norm + ReLU + 3x3/2 max pool (padding 1): (B, C, H, W) -> (B, out, ~H/4, ~W/4)."""

    stride = 4

    def __init__(self, *, in_channels: int = 3, out_channels: int = 64, norm: str = "FrozenBN") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvNorm(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
                              norm=get_norm(norm, out_channels))
        _msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def _shortcut(in_channels: int, out_channels: int, stride: int, norm: str) -> ConvNorm | None:
    if in_channels == out_channels:
        return None
    conv = ConvNorm(in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
                    norm=get_norm(norm, out_channels))
    _msra_fill(conv)
    return conv


def _pair(conv: ConvNorm | None) -> tuple[nn.Conv2d, nn.Module | None] | None:
    return (conv, conv.norm) if conv is not None else None


class BasicBlock(nn.Module):
    """Two 3x3 convs (stride on the first) plus a 1x1 projection shortcut when channels change (R18/R34)."""

    def __init__(self, *, in_channels: int, out_channels: int, stride: int = 1, norm: str = "FrozenBN") -> None:
        super().__init__()
        self.stride = stride
        self.out_channels = out_channels
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = ConvNorm(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False,
                              norm=get_norm(norm, out_channels))
        self.conv2 = ConvNorm(out_channels, out_channels, kernel_size=3, padding=1, bias=False,
                              norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2):
            _msra_fill(conv)

    def conv_norms(self) -> tuple[list[tuple[nn.Conv2d, nn.Module | None]], tuple[nn.Conv2d, nn.Module | None] | None]:
        """The main path's (conv, norm) pairs and the shortcut's (None: identity), for `FusedResNet`."""
        return [(c, c.norm) for c in (self.conv1, self.conv2)], _pair(self.shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 convs with a projection shortcut when channels change (R50 and deeper).

    `stride_in_1x1` True puts the stride in the first 1x1 conv (MSRA/caffe2 weights), False in the
    3x3 conv (torchvision weights). `dilation` applies to the 3x3 conv (padding = dilation).
    """

    def __init__(self, *, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int = 1,
                 num_groups: int = 1, norm: str = "FrozenBN", stride_in_1x1: bool = False,
                 dilation: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.out_channels = out_channels
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
                              norm=get_norm(norm, bottleneck_channels))
        self.conv2 = ConvNorm(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                              padding=dilation, dilation=dilation, groups=num_groups, bias=False,
                              norm=get_norm(norm, bottleneck_channels))
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                              norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2, self.conv3):
            _msra_fill(conv)

    def conv_norms(self) -> tuple[list[tuple[nn.Conv2d, nn.Module | None]], tuple[nn.Conv2d, nn.Module | None] | None]:
        """The main path's (conv, norm) pairs and the shortcut's (None: identity), for `FusedResNet`."""
        return [(c, c.norm) for c in (self.conv1, self.conv2, self.conv3)], _pair(self.shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return F.relu_(out)


def make_stage(*, num_blocks: int, in_channels: int, out_channels: int, first_stride: int = 1,
               bottleneck_channels: int | None = None, num_groups: int = 1, norm: str = "FrozenBN",
               stride_in_1x1: bool = False, dilation: int = 1) -> nn.Sequential:
    """One ResNet stage: `num_blocks` blocks, the first with `first_stride`, keys `0.conv1...`.

    Bottleneck blocks when `bottleneck_channels` is given, basic blocks otherwise. The C4 ROI heads
    build `roi_heads.res5` with num_blocks=3, in_channels=1024, out_channels=2048,
    bottleneck_channels=512, first_stride=2. Maps (B, in, H, W) -> (B, out, H/first_stride, W/first_stride).
    """
    blocks: list[nn.Module] = []
    for i in range(num_blocks):
        stride = first_stride if i == 0 else 1
        if bottleneck_channels is None:
            blocks.append(BasicBlock(in_channels=in_channels, out_channels=out_channels, stride=stride, norm=norm))
        else:
            blocks.append(BottleneckBlock(in_channels=in_channels, out_channels=out_channels,
                                          bottleneck_channels=bottleneck_channels, stride=stride,
                                          num_groups=num_groups, norm=norm, stride_in_1x1=stride_in_1x1,
                                          dilation=dilation))
        in_channels = out_channels
    return nn.Sequential(*blocks)


class ResNet(Backbone):
    """detectron2's ResNet: `stem` then stages `res2`.. up to the deepest requested output.

    forward: (B, 3, H, W) normalised images -> {name: (B, C, ceil(H/stride), ceil(W/stride))} for
    each name in `out_features` ("stem", "res2".."res5"). Stages up to `freeze_at` (1 = stem,
    2 = stem + res2, ...) get no gradients and frozen batch norm. With `fused_inference` on, CPU float32
    inference runs `FusedResNet` (folded norms, prepacked oneDNN convolutions), equal up to float rounding.
    """

    fused_inference = False  # set per instance by layers.fused_conv.use_fused_convolutions

    def __init__(self, *, depth: int = 50, out_features: Sequence[str] = ("res4",), in_channels: int = 3,
                 stem_out_channels: int = 64, res2_out_channels: int = 256, num_groups: int = 1,
                 width_per_group: int = 64, stride_in_1x1: bool = True, norm: str = "FrozenBN",
                 res5_dilation: int = 1, freeze_at: int = 0) -> None:
        super().__init__()
        if depth not in _BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}")
        if res5_dilation not in (1, 2):
            raise ValueError(f"res5_dilation must be 1 or 2, got {res5_dilation}")
        unknown = [f for f in out_features if f not in _STAGE_INDEX]
        if unknown or not out_features:
            raise ValueError(f"out_features must be among {list(_STAGE_INDEX)}, got {list(out_features)}")
        if depth in (18, 34) and (res2_out_channels != 64 or res5_dilation != 1 or num_groups != 1):
            raise ValueError("R18/R34 need res2_out_channels=64, res5_dilation=1, num_groups=1")
        self.out_features = list(out_features)
        self.stem = BasicStem(in_channels=in_channels, out_channels=stem_out_channels, norm=norm)
        self.stage_names: list[str] = []
        strides, channels = {"stem": BasicStem.stride}, {"stem": stem_out_channels}
        self._build_stages(depth, max(_STAGE_INDEX[f] for f in out_features), stem_out_channels,
                           res2_out_channels, num_groups * width_per_group, num_groups, stride_in_1x1, norm,
                           res5_dilation, strides, channels)
        self.out_strides = {f: strides[f] for f in self.out_features}
        self.out_channels = {f: channels[f] for f in self.out_features}
        self.freeze(freeze_at)
        self._fused: FusedResNet | None = None  # inference snapshot, rebuilt when the parameters change

    def _build_stages(self, depth: int, last: int, in_ch: int, out_ch: int, bottleneck: int, groups: int,
                      stride_in_1x1: bool, norm: str, res5_dilation: int, strides: dict[str, int],
                      channels: dict[str, int]) -> None:
        stride = BasicStem.stride
        for idx, stage_idx in enumerate(range(2, last + 1)):
            dilation = res5_dilation if stage_idx == 5 else 1
            first_stride = 1 if idx == 0 or dilation == 2 else 2
            stage = make_stage(num_blocks=_BLOCKS_PER_STAGE[depth][idx], in_channels=in_ch, out_channels=out_ch,
                               first_stride=first_stride,
                               bottleneck_channels=None if depth in (18, 34) else bottleneck,
                               num_groups=groups, norm=norm, stride_in_1x1=stride_in_1x1, dilation=dilation)
            name = f"res{stage_idx}"
            self.add_module(name, stage)
            self.stage_names.append(name)
            stride *= first_stride
            strides[name], channels[name] = stride, out_ch
            in_ch, out_ch, bottleneck = out_ch, out_ch * 2, bottleneck * 2

    def freeze(self, freeze_at: int) -> ResNet:
        """Freeze the stem (freeze_at >= 1) and stages res2..res{freeze_at}; returns self."""
        if freeze_at >= 1:
            self.stem = _freeze(self.stem)
        for name in self.stage_names:
            if freeze_at >= _STAGE_INDEX[name]:
                self.add_module(name, _freeze(getattr(self, name)))
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"ResNet takes a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        outputs: dict[str, torch.Tensor] = {}
        fused = self._fused_form(x)
        x = fused.stem(x)[1] if fused is not None else self.stem(x)
        if "stem" in self.out_features:
            outputs["stem"] = x
        for index, name in enumerate(self.stage_names):
            x = fused.stage(index, x) if fused is not None else getattr(self, name)(x)
            if name in self.out_features:
                outputs[name] = x
        if fused is not None:  # its results are channels-last
            outputs = {name: out.contiguous() for name, out in outputs.items()}
        return outputs

    def _fused_form(self, x: torch.Tensor) -> FusedResNet | None:
        """The up-to-date `FusedResNet` snapshot where `fused_inference` is on and `x` takes the fast path."""
        if not (self.fused_inference and fast_path_allowed(x)):
            return None
        stages = [getattr(self, name) for name in self.stage_names]
        self._fused = refreshed(self._fused, self, (self.stem.conv1, self.stem.conv1.norm), stages)
        return self._fused
