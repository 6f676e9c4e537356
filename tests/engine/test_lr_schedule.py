"""Warmup multi-step and cosine schedules against values computed by hand (detectron2's definitions)."""

from __future__ import annotations

import math

import pytest
import torch

from detic_cli.engine.lr_schedule import WarmupCosineLR, WarmupMultiStepLR
from detic_cli.errors import DeticError


def _optimizer(lrs=(0.1,)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _trace(scheduler, n):
    """lr of the first group used by iterations 0..n-1."""
    out = []
    for _ in range(n):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.step()
    return out


def test_multistep_with_linear_warmup():
    sched = WarmupMultiStepLR(_optimizer(), max_iter=100, steps=[30, 60, 150], gamma=0.1, warmup_factor=0.001,
                              warmup_iters=10, warmup_method="linear")
    lrs = _trace(sched, 101)
    for i in range(10):  # alpha = i / 10: factor * (1 - alpha) + alpha
        assert lrs[i] == pytest.approx(0.1 * (0.001 * (1 - i / 10) + i / 10), rel=1e-9)
    assert lrs[10] == pytest.approx(0.1) and lrs[29] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.01) and lrs[59] == pytest.approx(0.01)
    assert lrs[60] == pytest.approx(0.001) and lrs[100] == pytest.approx(0.001)  # step 150 > MAX_ITER ignored


def test_constant_warmup_and_no_warmup():
    sched = WarmupMultiStepLR(_optimizer(), max_iter=20, steps=[15], warmup_factor=0.25, warmup_iters=4,
                              warmup_method="constant")
    lrs = _trace(sched, 20)
    assert lrs[:4] == pytest.approx([0.025] * 4) and lrs[4:15] == pytest.approx([0.1] * 11)
    assert lrs[15:] == pytest.approx([0.01] * 5)
    lrs = _trace(WarmupMultiStepLR(_optimizer(), max_iter=20, steps=[], warmup_iters=0), 20)
    assert lrs == pytest.approx([0.1] * 20)


def test_cosine_with_warmup_reaches_base_lr_end():
    base, end, max_iter, warm = 2e-4, 2e-5, 100, 10
    sched = WarmupCosineLR(_optimizer([base, 10 * base]), max_iter=max_iter, base_lr=base, base_lr_end=end,
                           warmup_factor=1e-4, warmup_iters=warm)
    lrs = _trace(sched, max_iter)
    ratio = end / base

    def cos(i):
        return ratio + 0.5 * (1 - ratio) * (1 + math.cos(math.pi * i / max_iter))

    for i in range(warm):  # linear from 1e-4 x cos(0) = 1e-4 to cos(warmup end)
        alpha = i / warm
        assert lrs[i] == pytest.approx(base * (cos(warm) * alpha + 1e-4 * (1 - alpha)), rel=1e-9)
    for i in (10, 37, 50, 99):
        assert lrs[i] == pytest.approx(base * cos(i), rel=1e-9)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(end)  # after the last step
    assert sched.get_last_lr()[1] == pytest.approx(10 * end)  # every group keeps its relative scale


def test_state_dict_resumes_the_same_values():
    def make():
        return WarmupCosineLR(_optimizer([0.1, 0.05]), max_iter=50, base_lr=0.1, warmup_iters=5)

    first = make()
    _trace(first, 17)
    state = first.state_dict()
    assert state == {"base_lrs": [0.1, 0.05], "last_iter": 17}
    second = make()
    second.load_state_dict(state)
    assert _trace(second, 33) == _trace(first, 33)


def test_bad_settings_are_errors():
    with pytest.raises(DeticError, match="WARMUP_METHOD"):
        WarmupMultiStepLR(_optimizer(), max_iter=10, steps=[], warmup_method="exp")
    with pytest.raises(DeticError, match="BASE_LR_END"):
        WarmupCosineLR(_optimizer(), max_iter=10, base_lr=0.1, base_lr_end=0.5)
    with pytest.raises(DeticError, match="MAX_ITER"):
        WarmupCosineLR(_optimizer(), max_iter=0, base_lr=0.1)
