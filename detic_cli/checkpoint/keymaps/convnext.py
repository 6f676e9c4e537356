"""ConvNeXt key map: the official release (facebookresearch/ConvNeXt) and timm -> timm features_only keys."""

from __future__ import annotations

import re

import torch

from detic_cli.checkpoint.keymaps.rename import KeyMap, Tensors, rename_all

_RULES = [  # official and timm layouts -> timm features_only names
    (r"^downsample_layers\.0\.(\d)\.", r"stem_\1."), (r"^stem\.(\d)\.", r"stem_\1."),
    (r"^downsample_layers\.(\d)\.", r"stages_\1.downsample."),
    (r"^stages\.(\d)\.downsample\.", r"stages_\1.downsample."),
    (r"^stages\.(\d)\.blocks\.(\d+)\.", r"stages_\1.blocks.\2."), (r"^stages\.(\d)\.(\d+)\.", r"stages_\1.blocks.\2."),
]
_BLOCK = {"dwconv": "conv_dw.", "pwconv1": "mlp.fc1.", "pwconv2": "mlp.fc2."}


def _name(key: str) -> str | None:
    for pattern, repl in _RULES:
        if re.match(pattern, key):
            name = re.sub(pattern, repl, key)
            name = re.sub(r"(\.blocks\.\d+\.)(dwconv|pwconv1|pwconv2)\.", lambda m: m.group(1) + _BLOCK[m.group(2)],
                          name)
            return "backbone.bottom_up.base." + name
    return None  # head, final norm / norm_pre


def map_convnext(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """ConvNeXt (official `convnext_tiny_22k_224.pth` or timm) -> ``backbone.bottom_up.base.stem_0 ...``."""
    return rename_all(sd, _name)


def is_convnext(keys: set[str]) -> bool:
    return "downsample_layers.0.0.weight" in keys or ("stem.0.weight" in keys and "stages.0.blocks.0.gamma" in keys)


KEY_MAPS: dict[str, KeyMap] = {"convnext": map_convnext}
