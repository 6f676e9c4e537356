"""timm ResNets as Detic wraps them (`backbone.bottom_up.base.*`): resnet18/34/50 and MIIL resnet50_in21k."""

from __future__ import annotations

import timm
import torch
from torch import nn

from detic_cli.layers.batch_norm import FrozenBatchNorm2d
from detic_cli.layers.fast_conv import fast_path_allowed
from detic_cli.modeling.backbone.base import Backbone
from detic_cli.modeling.backbone.fused_resnet import FusedResNet, refreshed

# Extra classifier kept in the checkpoint of the MIIL ImageNet-21K ResNet-50 (unused by detection).
_CLASSIFIER_CLASSES = {"resnet50_in21k": 11221}
_TIMM_NAMES = {"resnet50_in21k": "resnet50"}


class TimmResNet(Backbone):
    """ResNet stages from timm; outputs `layer{l}` for l in `out_levels` (layer3 = stride 8, ..., layer5 = 32).

    Level l is timm's feature index l - 1: 1 = stem (stride 2), 2 = layer1 (4), 3 = layer2 (8), ...
    `freeze_at` >= 1 freezes the stem, >= 2 also layer1; `norm` FrozenBN freezes every BatchNorm.
    With `fused_inference` on, CPU float32 inference runs `FusedResNet` (folded norms, prepacked oneDNN
    convolutions with ReLU and residual sums fused), equal up to float rounding.
    """

    fused_inference = False  # set per instance by layers.fused_conv.use_fused_convolutions

    def __init__(self, *, base_name: str, out_levels: list[int], freeze_at: int = 0,
                 norm: str = "FrozenBN") -> None:
        super().__init__()
        timm_name = _TIMM_NAMES.get(base_name, base_name)
        if not timm_name.startswith("resnet"):
            raise ValueError(f"TimmResNet: unsupported base {base_name}")
        self.base = timm.create_model(timm_name, pretrained=False,
                                      num_classes=_CLASSIFIER_CLASSES.get(base_name, 0))
        info = self.base.feature_info  # one entry per level 1..5
        self._levels = list(out_levels)
        self.out_features = [f"layer{level}" for level in out_levels]
        self.out_channels = {f"layer{lv}": int(info[lv - 1]["num_chs"]) for lv in out_levels}
        self.out_strides = {f"layer{lv}": int(info[lv - 1]["reduction"]) for lv in out_levels}
        self.size_divisibility = max(self.out_strides.values())
        self._freeze(freeze_at)
        if norm == "FrozenBN":
            FrozenBatchNorm2d.convert(self.base)
        self._fused: FusedResNet | None = None  # inference snapshot, rebuilt when the parameters change

    def _freeze(self, freeze_at: int) -> None:
        parts = [self.base.conv1, self.base.bn1] if freeze_at >= 1 else []
        if freeze_at >= 2:
            parts.append(self.base.layer1)
        for module in parts:
            for p in module.parameters():
                p.requires_grad_(False)
            FrozenBatchNorm2d.convert(module)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        base = self.base
        stages = (base.layer1, base.layer2, base.layer3, base.layer4)
        fused = self._fused_form(x, stages)
        if fused is not None:
            stem, x = fused.stem(x)
        else:
            stem = base.act1(base.bn1(base.conv1(x)))
            x = base.maxpool(stem)
        levels = {1: stem}
        for level, stage in enumerate(stages, start=2):
            if level > max(self._levels):
                break
            x = fused.stage(level - 2, x) if fused is not None else stage(x)
            levels[level] = x
        return {f"layer{lv}": levels[lv].contiguous() for lv in self._levels}  # fused: from channels-last

    def _fused_form(self, x: torch.Tensor, stages: tuple[nn.Module, ...]) -> FusedResNet | None:
        """The up-to-date `FusedResNet` snapshot where `fused_inference` is on and `x` takes the fast path
        (timm's stem: conv1, bn1, a ReLU, the 3x3/2 max pool)."""
        base = self.base
        if not (self.fused_inference and fast_path_allowed(x) and type(base.act1) is nn.ReLU
                and _is_stem_pool(base.maxpool)):
            return None
        self._fused = refreshed(self._fused, self, (base.conv1, base.bn1), stages)
        return self._fused


def _is_stem_pool(pool: nn.Module) -> bool:
    """timm's default stem pool, nn.MaxPool2d(3, 2, 1), which `FusedResNet.stem` runs."""
    return (type(pool) is nn.MaxPool2d and pool.kernel_size in (3, (3, 3)) and pool.stride in (2, (2, 2))
            and pool.padding in (1, (1, 1)) and pool.dilation in (1, (1, 1)) and not pool.ceil_mode)
