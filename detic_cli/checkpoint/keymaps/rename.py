"""The one loop every key map runs: rename each tensor or report it unused, dropping rebuilt buffers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

Tensors = Mapping[str, torch.Tensor]
KeyMap = Callable[[Tensors], tuple[dict[str, torch.Tensor], list[str]]]
# Buffers a model rebuilds itself (BN step counters, Swin index tables and attention masks): dropped, not reported.
DROPPED_SUFFIXES = ("num_batches_tracked", "relative_position_index", "attn_mask")


def rename_all(sd: Tensors, rename: Callable[[str], str | None]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(tensors under their new names, source keys `rename` has no name for)."""
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, value in sd.items():
        if key.endswith(DROPPED_SUFFIXES):
            continue
        new = rename(key)
        if new is None:
            unused.append(key)
        else:
            out[new] = value
    return out, unused
