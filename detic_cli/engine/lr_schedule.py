"""Learning-rate schedules as detectron2 computes them: a warmup phase, then multi-step or cosine decay.

The learning rate of every parameter group at iteration i (0-based, the one about to run) is its
initial lr times `multiplier(i / max_iter)`:
- warmup (the first WARMUP_ITERS / MAX_ITER of training): "linear" goes from WARMUP_FACTOR x the
  schedule's start value to the schedule's value at the end of warmup; "constant" stays at
  WARMUP_FACTOR x the start value;
- WarmupMultiStepLR: GAMMA ** (number of STEPS <= i), steps >= MAX_ITER ignored;
- WarmupCosineLR: end + (1 - end) x (1 + cos(pi x i / max_iter)) / 2 with end = BASE_LR_END / BASE_LR.
Progress comparisons use detectron2's tolerance of 1e-6 of the run.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from detic_cli.errors import DeticError

EPS = 1e-6  # detectron2 (fvcore) compares training progress with this tolerance
Schedule = Callable[[float], float]


def multistep(values: Sequence[float], milestones: Sequence[int], num_updates: int) -> Schedule:
    """values[k] while the iteration is in [milestones[k-1], milestones[k])."""
    def at(where: float) -> float:
        return values[bisect.bisect_right(list(milestones), int((where + EPS) * num_updates))]
    return at


def cosine(start: float, end: float) -> Schedule:
    def at(where: float) -> float:
        return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * where))
    return at


def with_warmup(schedule: Schedule, *, factor: float, length: float, method: str) -> Schedule:
    """`schedule` preceded by a warmup over the first `length` (fraction of training)."""
    if method not in ("linear", "constant"):
        raise DeticError(f"SOLVER.WARMUP_METHOD {method!r}: expected linear or constant")
    start, end = factor * schedule(0.0), schedule(length)

    def at(where: float) -> float:
        if where + EPS > length:
            return schedule(where)
        if method == "constant":
            return start
        alpha = where / length
        return end * alpha + start * (1.0 - alpha)
    return at


class LRMultiplier:
    """Sets each group's lr to its initial lr x `multiplier(iteration / max_iter)`.

    Like torch schedulers: built at iteration 0 (lrs set for it); `step()` after each optimizer step.
    `state_dict()` holds only plain numbers (the schedule itself is rebuilt from the config).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, multiplier: Schedule, max_iter: int) -> None:
        if max_iter <= 0:
            raise DeticError(f"SOLVER.MAX_ITER {max_iter}: must be positive")
        self.optimizer = optimizer
        self.multiplier = multiplier
        self.max_iter = max_iter
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def factor(self, iteration: int) -> float:
        """The multiplier at `iteration` (past max_iter the last value holds)."""
        return self.multiplier(min(iteration / self.max_iter, 1.0))

    def _apply(self) -> None:
        factor = self.factor(self.last_iter)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "last_iter": self.last_iter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise DeticError("checkpoint scheduler has a different number of parameter groups; the model or "
                             "SOLVER settings changed since it was written")
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self.last_iter = int(state["last_iter"])
        self._apply()


class WarmupMultiStepLR(LRMultiplier):
    """lr x gamma ** (steps passed), after warmup (detectron2's WarmupMultiStepLR)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, max_iter: int, steps: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 0.001, warmup_iters: int = 1000, warmup_method: str = "linear") -> None:
        kept = sorted(int(s) for s in steps if s < max_iter)
        values = [gamma ** k for k in range(len(kept) + 1)]
        schedule = with_warmup(multistep(values, kept, max_iter), factor=warmup_factor,
                               length=min(warmup_iters / max(max_iter, 1), 1.0), method=warmup_method)
        super().__init__(optimizer, multiplier=schedule, max_iter=max_iter)


class WarmupCosineLR(LRMultiplier):
    """Half-cosine from lr to base_lr_end over max_iter, after warmup (detectron2's WarmupCosineLR)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, max_iter: int, base_lr: float, base_lr_end: float = 0.0,
                 warmup_factor: float = 0.001, warmup_iters: int = 1000, warmup_method: str = "linear") -> None:
        end = base_lr_end / base_lr if base_lr else 0.0
        if not 0.0 <= end <= 1.0:
            raise DeticError(f"SOLVER.BASE_LR_END {base_lr_end}: must lie between 0 and SOLVER.BASE_LR {base_lr}")
        schedule = with_warmup(cosine(1.0, end), factor=warmup_factor,
                               length=min(warmup_iters / max(max_iter, 1), 1.0), method=warmup_method)
        super().__init__(optimizer, multiplier=schedule, max_iter=max_iter)
