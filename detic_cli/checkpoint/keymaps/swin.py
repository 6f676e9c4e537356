"""Swin Transformer key map: Microsoft's release and timm 1.x -> the detector's Swin bottom-up keys."""

from __future__ import annotations

import re

import torch

from detic_cli.checkpoint.keymaps.rename import KeyMap, Tensors, rename_all


def map_swin(sd: Tensors) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Microsoft Swin (`layers.N.downsample` ends stage N) or timm 1.x (it starts stage N+1) -> bottom-up keys.

    The classifier (`head`) and the final `norm` are unused; the detector's norm1..3 start from scratch.
    """
    timm_layout = not any(k.startswith("layers.0.downsample.") for k in sd) and any(
        k.startswith("layers.1.downsample.") for k in sd)

    def rename(key: str) -> str | None:
        if key.startswith(("head.", "norm.")):
            return None
        if timm_layout:
            key = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", key)
        return "backbone.bottom_up." + key

    return rename_all(sd, rename)


def is_swin(keys: set[str]) -> bool:
    return "patch_embed.proj.weight" in keys


KEY_MAPS: dict[str, KeyMap] = {"swin": map_swin}
