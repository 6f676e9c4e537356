"""ConvNeXt bottom-up backbone in the key layout of the original's timm feature wrapper (`MODEL.TIMM`).

The original builds timm's ConvNeXt with ``features_only=True`` (flattened sequentials), so its keys,
after ``backbone.bottom_up.``, are ``base.stem_0`` (4x4/4 conv), ``base.stem_1`` (LayerNorm2d) and
``base.stages_S.{downsample.0 (LayerNorm2d), downsample.1 (2x2/2 conv), blocks.M.{conv_dw, norm, mlp.fc1,
mlp.fc2, gamma}}``; stages after the last returned one are not built (timm truncates them too).
`OUT_LEVELS` L returns stage L-1 as ``layerL`` with stride 2^(L+1): levels 2, 3, 4 -> strides 8, 16, 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from detic_cli.layers.drop_path import drop_path
from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.layers.mlp import Mlp
from detic_cli.modeling.backbone.base import Backbone

LN_EPS = 1e-6


@dataclass(frozen=True)
class ConvNeXtSize:
    """Depths and widths of the four stages of one timm ConvNeXt name."""

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]


CONVNEXT_SIZES: dict[str, ConvNeXtSize] = {
    "convnext_tiny": ConvNeXtSize((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_tiny_21k": ConvNeXtSize((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ConvNeXtSize((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ConvNeXtSize((3, 3, 27, 3), (128, 256, 512, 1024)),
    "convnext_large": ConvNeXtSize((3, 3, 27, 3), (192, 384, 768, 1536)),
}



class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (eps 1e-6): (B, C, H, W) -> (B, C, H, W).

    `unbiased=False` is the usual layer norm (variance over C). `unbiased=True` divides the variance by
    C - 1, as the original's timm 0.5.4 ConvNeXt does between stages: its LayerNorm2d switches to a
    channels-first formula built on `torch.var_mean` (unbiased by default) whenever its input is laid out
    channels-last, which every stage output is (the blocks end on a permuted tensor). A 1 x 1 map is
    contiguous in either layout, so there it keeps the biased variance.
    """

    def __init__(self, channels: int, unbiased: bool = False) -> None:
        super().__init__(channels, eps=LN_EPS)
        self.unbiased = unbiased

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unbiased and x.shape[-2] * x.shape[-1] > 1:
            var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=1)
            if fast_path_allowed(x):  # the same operations, written into one buffer
                y = (x - mean).mul_(torch.rsqrt(var + self.eps))
                return y.mul_(self.weight[:, None, None]).add_(self.bias[:, None, None])
            y = (x - mean) * torch.rsqrt(var + self.eps)
            return y * self.weight[:, None, None] + self.bias[:, None, None]
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LN(dwconv7x7(x))), the MLP and LN channels-last. (B, C, H, W) -> same shape."""

    def __init__(self, dim: int, drop_path_rate: float = 0.0, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.drop_path_rate = drop_path_rate
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        y = y.mul(self.gamma.reshape(1, -1, 1, 1))
        return x + drop_path(y, self.drop_path_rate, self.training)

    def forward_inference(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        """`forward` in eval mode without gradient, the same float operations with GELU and the layer scale in
        place, and the residual sum written into `x` when `inplace` (x must then be a tensor nobody else reads).
        x: (B, C, H, W) -> (B, C, H, W)."""
        y = self.norm(self.conv_dw(x).permute(0, 2, 3, 1))  # (B, H, W, C), a new contiguous tensor
        self.mlp.apply_in_chunks(y.view(-1, y.shape[-1]), lambda part, out: torch.mul(out, self.gamma, out=part))
        y = y.permute(0, 3, 1, 2)
        return x.add_(y) if inplace else x + y


class ConvNeXtStage(nn.Module):
    """Optional downsample (LayerNorm2d with the unbiased variance, then 2x2 stride-2 conv) followed by
    `depth` blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, drop_path_rates: Sequence[float], downsample: bool) -> None:
        super().__init__()
        if downsample:
            norm = LayerNorm2d(in_dim, unbiased=True)
            self.downsample = nn.Sequential(norm, nn.Conv2d(in_dim, dim, kernel_size=2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*(ConvNeXtBlock(dim, drop_path_rates[i]) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.training or not fast_path_allowed(x):
            return self.blocks(x)
        for i, block in enumerate(self.blocks):  # CPU inference: from the second block on, residuals in place
            x = block.forward_inference(x, inplace=i > 0)
        return x


class ConvNeXtFeatures(nn.Module):
    """Stem and stages 0..`num_stages`-1, returning every stage output (stride 4, 8, 16, 32)."""

    def __init__(self, size: ConvNeXtSize, num_stages: int, drop_path_rate: float, in_chans: int = 3) -> None:
        super().__init__()
        self.num_stages = num_stages
        self.stem_0 = nn.Conv2d(in_chans, size.dims[0], kernel_size=4, stride=4)
        self.stem_1 = LayerNorm2d(size.dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(size.depths)).tolist()
        for s in range(num_stages):
            start = sum(size.depths[:s])
            stage_rates = rates[start : start + size.depths[s]]
            in_dim = size.dims[max(s - 1, 0)]
            self.add_module(f"stages_{s}", ConvNeXtStage(in_dim, size.dims[s], size.depths[s], stage_rates, s > 0))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, H, W) -> [stage s output (B, dims[s], H / 2^(s+2), W / 2^(s+2))] (sides floored)."""
        x = self.stem_1(self.stem_0(x))
        outs = []
        for s in range(self.num_stages):
            x = getattr(self, f"stages_{s}")(x)
            outs.append(x)
        return outs


class TimmConvNeXt(Backbone):
    """`MODEL.TIMM` ConvNeXt: returns ``layerL`` for L in `out_levels` (each in 1..4, stage L-1).

    Input: a normalised (B, 3, H, W) batch; sides should be multiples of 32 (`size_divisibility`), else the
    strided convs floor them. Output ``layerL``: (B, dims[L-1], H / 2^(L+1), W / 2^(L+1)).
    """

    def __init__(
        self,
        *,
        base_name: str = "convnext_tiny_21k",
        out_levels: Sequence[int] = (2, 3, 4),
        drop_path_rate: float | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if base_name not in CONVNEXT_SIZES:
            raise ValueError(f"unknown ConvNeXt MODEL.TIMM.BASE_NAME {base_name!r}; known: {sorted(CONVNEXT_SIZES)}")
        levels = [int(level) for level in out_levels]
        if not levels or any(level < 1 or level > 4 for level in levels):
            raise ValueError(f"MODEL.TIMM.OUT_LEVELS for ConvNeXt must lie in 1..4, got {levels}")
        if drop_path_rate is None:  # the original's choice by model name (training only)
            drop_path_rate = 0.2 if ("tiny" in base_name or "small" in base_name) else 0.3
        size = CONVNEXT_SIZES[base_name]
        self.out_levels = levels
        self.base = ConvNeXtFeatures(size, max(levels), drop_path_rate, in_chans)
        self.out_features = [f"layer{level}" for level in levels]
        self.out_channels = {f"layer{level}": size.dims[level - 1] for level in levels}
        self.out_strides = {f"layer{level}": 2 ** (level + 1) for level in levels}
        self.size_divisibility = max(self.out_strides.values())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) float -> {"layerL": (B, C_L, H_L, W_L)} in NCHW."""
        feats = self.base(x)
        return {f"layer{level}": feats[level - 1] for level in self.out_levels}
