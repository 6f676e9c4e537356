"""Optimizers as the original recipes build them: parameter groups, SGD / AdamW, gradient clipping.

Two ways to group parameters, as in the original code:
- `custom_param_groups` (Detic's `build_custom_optimizer`, SOLVER.USE_CUSTOM_SOLVER): the learning rate
  of every parameter whose name contains "backbone" is multiplied by `backbone_multiplier`, and of every
  parameter whose name contains one of `custom_names` by `custom_multiplier`; all parameters share one
  weight decay (norm layers and biases included).
- `default_param_groups` (detectron2's `get_default_optimizer_params`): parameters of normalization
  layers take `weight_decay_norm`, biases take `base_lr * bias_lr_factor` and `weight_decay_bias`.
Groups with equal hyper-parameters are merged (the maths is per parameter, so this changes nothing
but speed). Clipping is applied by the trainer right before `optimizer.step()`, on unscaled gradients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from detic_cli.errors import DeticError

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm1d,
              nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm)
OptimizerName = Literal["SGD", "ADAMW"]
ClipType = Literal["value", "norm", "full_model"]


def merge_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One group per distinct set of hyper-parameters, parameters kept in their first-seen order."""
    merged: dict[tuple, dict[str, Any]] = {}
    for group in groups:
        key = tuple(sorted((k, v) for k, v in group.items() if k != "params"))
        merged.setdefault(key, {**dict(key), "params": []})["params"].extend(group["params"])
    return list(merged.values())


def custom_param_groups(model: nn.Module, *, base_lr: float, weight_decay: float | None,
                        backbone_multiplier: float = 1.0, custom_multiplier: float = 1.0,
                        custom_names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Detic's groups: lr = base_lr x backbone_multiplier (name contains "backbone") x custom_multiplier
    (name contains any of `custom_names`). `weight_decay` None leaves it to the optimizer (AdamW)."""
    names = tuple(custom_names)
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for key, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        lr = base_lr
        if "backbone" in key:
            lr *= backbone_multiplier
        if any(name in key for name in names):
            lr *= custom_multiplier
        group: dict[str, Any] = {"params": [param], "lr": lr}
        if weight_decay is not None:
            group["weight_decay"] = weight_decay
        groups.append(group)
    return merge_groups(groups)


def default_param_groups(model: nn.Module, *, base_lr: float, weight_decay: float,
                         weight_decay_norm: float | None = None, bias_lr_factor: float = 1.0,
                         weight_decay_bias: float | None = None) -> list[dict[str, Any]]:
    """detectron2's groups: norm-layer parameters decay by `weight_decay_norm` (None: `weight_decay`);
    parameters named `bias` train at base_lr x bias_lr_factor and decay by `weight_decay_bias` (None: as
    the others)."""
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            group: dict[str, Any] = {"params": [param], "lr": base_lr, "weight_decay": weight_decay}
            if isinstance(module, NORM_TYPES) and weight_decay_norm is not None:
                group["weight_decay"] = weight_decay_norm
            if name == "bias":
                group["lr"] = base_lr * bias_lr_factor
                if weight_decay_bias is not None:
                    group["weight_decay"] = weight_decay_bias
            groups.append(group)
    return merge_groups(groups)


def make_optimizer(groups: list[dict[str, Any]], *, name: OptimizerName, base_lr: float, momentum: float = 0.9,
                   nesterov: bool = False, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW over `groups`; `weight_decay` is the default of groups without one."""
    if not groups:
        raise DeticError("the model has no trainable parameters; check MODEL.*.FREEZE* settings")
    if name == "SGD":
        return torch.optim.SGD(groups, lr=base_lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "ADAMW":
        return torch.optim.AdamW(groups, lr=base_lr, weight_decay=weight_decay)
    raise DeticError(f"SOLVER.OPTIMIZER {name!r}: expected SGD or ADAMW")


@dataclass(frozen=True)
class GradClip:
    """Gradient clipping before each step. kind "value": every gradient element clamped to
    [-value, value]; "norm": each parameter's gradient scaled to p-norm <= value (detectron2, per
    parameter); "full_model": all gradients together scaled to p-norm <= value (Detic's DETR recipe)."""

    kind: ClipType = "value"
    value: float = 1.0
    norm_type: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in ("value", "norm", "full_model"):
            raise DeticError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE {self.kind!r}: expected value, norm or full_model")


def clip_gradients(optimizer: torch.optim.Optimizer, clip: GradClip) -> None:
    """Clip the gradients of every parameter `optimizer` updates, in place."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return
    if clip.kind == "value":
        torch.nn.utils.clip_grad_value_(params, clip.value)
    elif clip.kind == "norm":
        for param in params:
            torch.nn.utils.clip_grad_norm_(param, clip.value, clip.norm_type)
    elif clip.value > 0:
        torch.nn.utils.clip_grad_norm_(params, clip.value, clip.norm_type)
