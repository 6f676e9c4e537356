"""Inference form of the ResNet backbones (timm's as Detic wraps them, and the detectron2 layout): every
convolution a `FusedConv` (batch norm folded in, oneDNN weights prepacked, ReLU and residual sum fused).

`FusedResNet` is a snapshot of a backbone's stem convolution and stages, taken from the module without
changing it; `matches(owner)` tells whether the owner's parameters are still those it was taken from. The
backbones run it only when `fused_inference` is on (the Predictor's `use_fused_convolutions`) and the input is
`fast_path_allowed` (CPU float32, no gradient, no autocast, not tracing/exporting); training, CUDA, `--amp` and
export keep the module's own forward. Results equal the module's up to float32 rounding (~1e-6 relative).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.models import resnet as timm_resnet
from torch import nn

from detic_cli.layers.fused_conv import FusedConv, foldable_norm, onednn_ready, parameter_key

__all__ = ["FusedResNet", "block_convs"]

_ConvNorm = tuple[nn.Conv2d, nn.Module | None]


def _timm_plain(block: nn.Module) -> bool:
    """A timm block without the extras the fused form does not run (drop block, anti-aliasing, SE, drop
    path, activations other than ReLU, an average-pooled shortcut)."""
    acts = [getattr(block, name) for name in ("act1", "act2", "act3") if hasattr(block, name)]
    downsample = block.downsample
    return (isinstance(block.drop_block, nn.Identity) and isinstance(block.aa, nn.Identity) and block.se is None
            and block.drop_path is None and all(type(a) is nn.ReLU for a in acts)
            and (downsample is None or (isinstance(downsample, nn.Sequential) and len(downsample) == 2
                                        and type(downsample[0]) is nn.Conv2d)))


def block_convs(block: nn.Module) -> tuple[list[_ConvNorm], _ConvNorm | None] | None:
    """The (conv, norm) pairs of a residual block's main path in order, and its projection shortcut (None:
    identity), for timm's BasicBlock/Bottleneck and the blocks with a `conv_norms()` method giving the same
    (this project's BasicBlock/BottleneckBlock); None for any other block or a norm that cannot be folded
    (GroupNorm, BatchNorm in training mode)."""
    if hasattr(block, "conv_norms"):
        main, shortcut = block.conv_norms()
    elif isinstance(block, (timm_resnet.BasicBlock, timm_resnet.Bottleneck)) and _timm_plain(block):
        count = 3 if isinstance(block, timm_resnet.Bottleneck) else 2
        main = [(getattr(block, f"conv{i}"), getattr(block, f"bn{i}")) for i in range(1, count + 1)]
        shortcut = (block.downsample[0], block.downsample[1]) if block.downsample is not None else None
    else:
        return None
    pairs = main + ([shortcut] if shortcut is not None else [])
    if not all(foldable_norm(norm) and conv.padding_mode == "zeros" for conv, norm in pairs):
        return None
    return main, shortcut


class _FusedBlock:
    """relu(main(x) + shortcut(x)): ReLU after every main-path conv, the sum fused into the last one."""

    def __init__(self, block: nn.Module) -> None:
        main, shortcut = block_convs(block)
        self.main = [FusedConv(conv, norm) for conv, norm in main]
        self.shortcut = FusedConv(*shortcut) if shortcut is not None else None

    def __call__(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """`overwrite_input`: x is the caller's own temporary, so an identity shortcut's sum may land in it."""
        fresh = self.shortcut is not None
        residual = self.shortcut(x) if fresh else x
        y = x
        for conv in self.main[:-1]:
            y = conv(y, relu=True)
        return self.main[-1](y, relu=True, residual=residual, into_residual=fresh or overwrite_input)


class FusedResNet:
    """Snapshot of a ResNet's stem conv (7x7/2 + norm + ReLU, then the 3x3/2 max pool, padding 1) and stages.

    `stem(x)`: (B, 3, H, W) -> (stem conv output (B, C, H/2, W/2), pooled (B, C, H/4, W/4));
    `stage(i, x)`: stage i (0-based, as given) of (B, C, H, W). Results are in channels-last memory (see
    `FusedConv`; the max pool is also faster there): the backbone makes its outputs `.contiguous()`.
    Build it with `FusedResNet(owner, ...)` only when `supported(...)`; `matches(owner)` false means rebuild.
    """

    def __init__(self, owner: nn.Module, stem: _ConvNorm, stages: Sequence[nn.Sequential]) -> None:
        self._key = parameter_key(owner)
        self._stem = FusedConv(*stem)
        self._stages = [[_FusedBlock(block) for block in stage] for stage in stages]

    @staticmethod
    def supported(stem: _ConvNorm, stages: Sequence[nn.Module]) -> bool:
        conv, norm = stem
        return (onednn_ready() and foldable_norm(norm) and conv.padding_mode == "zeros"
                and all(isinstance(s, nn.Sequential) and all(block_convs(b) is not None for b in s) for s in stages))

    def matches(self, owner: nn.Module) -> bool:
        return self._key == parameter_key(owner)

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self._stem(x, relu=True)
        return y, F.max_pool2d(y, kernel_size=3, stride=2, padding=1)

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        for k, block in enumerate(self._stages[index]):
            x = block(x, overwrite_input=k > 0)  # the stage's input may be a returned feature: never written
        return x


def refreshed(form: FusedResNet | None, owner: nn.Module, stem: _ConvNorm,
              stages: Sequence[nn.Module]) -> FusedResNet | None:
    """`form` if it still matches `owner`'s parameters, else a new snapshot (None where unsupported)."""
    if form is not None and form.matches(owner):
        return form
    return FusedResNet(owner, stem, stages) if FusedResNet.supported(stem, stages) else None
