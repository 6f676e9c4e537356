"""Load official Detic checkpoints into the project's models, with exact key accounting."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detic_cli.checkpoint.safe_load import model_state_dict, read_checkpoint
from detic_cli.errors import DeticError

# Buffers a model derives itself (index tables, BN step counters, class-frequency weights) or
# takes from the vocabulary (zs_weight): neither required nor loaded from a checkpoint.
DERIVED_SUFFIXES = ("relative_position_index", "num_batches_tracked", "freq_weight", "fed_loss_weight",
                    "zs_weight")
# Heads a config may switch off (MODEL.MASK_ON False): their keys in a checkpoint are skipped, as the original does.
OPTIONAL_HEADS = ("roi_heads.mask_head.",)


def is_derived(key: str) -> bool:
    return key.endswith(DERIVED_SUFFIXES)


def _summarise(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `model`; any missing or unexpected learned key, or a shape mismatch, is an error."""
    expected = {k: v for k, v in model.state_dict().items() if not is_derived(k)}
    off = tuple(p for p in OPTIONAL_HEADS if not any(k.startswith(p) for k in expected))
    given = {k: v for k, v in state.items() if not is_derived(k) and not (off and k.startswith(off))}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_summarise(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_summarise(unexpected)}")
        raise DeticError(f"{source}: does not fit this config ({'; '.join(parts)}); check --config")
    wrong = [f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if given[k].shape != v.shape]
    if wrong:
        raise DeticError(f"{source}: shape mismatch for {_summarise(wrong, 2)}; check --config")
    model.load_state_dict(given, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load an official-layout checkpoint file (`{"model": state_dict}`) into `model`."""
    obj = read_checkpoint(path)
    load_state_dict(model, model_state_dict(obj, str(path)), str(path))
