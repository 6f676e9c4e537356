"""Mixed precision for training and inference, scoped as Detic's FP16 scopes it.

The original CustomRCNN (config key FP16) runs only its backbone under autocast and turns the features back to
float32 before the proposal generator and ROI heads, so box decoding, IoU matching and every loss run in
float32 (box areas of 896-pixel inputs exceed float16's 65504). `autocast_scope` does the same for any
model with a `backbone` submodule; a model without one runs its whole forward under autocast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from detic_cli.structures import Boxes, Instances


def to_float32(obj: Any) -> Any:
    """Floating tensors (inside dicts, lists, tuples, `Boxes` and `Instances` fields) as float32; everything
    else unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, Boxes):
        return Boxes(to_float32(obj.tensor))
    if isinstance(obj, Instances):
        return Instances(obj.image_size, **{k: to_float32(v) for k, v in obj.get_fields().items()})
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float32(v) for v in obj)
    return obj


@contextmanager
def autocast_scope(model: nn.Module, device_type: str, dtype: torch.dtype | None) -> Iterator[None]:
    """Within the block, `model.backbone` (when it is a module) runs under autocast to `dtype` and returns
    float32 outputs; without a backbone the whole block is autocast. `dtype` None: no autocast at all."""
    if dtype is None:
        yield
        return
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        with torch.autocast(device_type, dtype=dtype):
            yield
        return
    inner = backbone.forward
    had_own = "forward" in backbone.__dict__

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            out = inner(*args, **kwargs)
        return to_float32(out)

    backbone.forward = forward
    try:
        yield
    finally:
        if had_own:
            backbone.forward = inner
        else:
            del backbone.forward
