"""The training loop on a toy model: exact resume, NaN stop, metrics, evaluation hook, 2-process DDP."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from detic_cli.engine.checkpointer import last_checkpoint
from detic_cli.engine.lr_schedule import WarmupCosineLR
from detic_cli.engine.optim import GradClip, custom_param_groups, make_optimizer
from detic_cli.engine.trainer import Trainer
from detic_cli.errors import DeticError

BATCH = 4


class ToyDetector(nn.Module):
    """Returns `loss_*` terms like a detector; uses the python, numpy and torch random generators."""

    def __init__(self, noisy: bool = True, nan_at: int | None = None) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3 if noisy else 0.0))
        self.head = nn.Linear(8, 2)
        self.noisy, self.nan_at, self.calls = noisy, nan_at, 0

    def forward(self, batch):
        self.calls += 1
        x = torch.stack([b["image"] for b in batch])
        y = torch.stack([b["target"] for b in batch])
        out = self.head(self.backbone(x))
        scale = 0.01 + (random.random() + float(np.random.rand())) * 1e-3 if self.noisy else 0.01
        losses = {"loss_fit": ((out.float() - y) ** 2).mean(), "loss_reg": out.float().abs().mean() * scale}
        if self.calls == self.nan_at:
            losses["loss_fit"] = losses["loss_fit"] * float("nan")
        return losses


def toy_data(rank: int = 0, world_size: int = 1, crash_at: int | None = None):
    """make_data(start_iter, seed): batch k depends only on (seed, k); this process takes its share."""
    def make(start_iter: int, seed: int):
        for k in itertools.count(start_iter):
            if k == crash_at:
                raise KeyboardInterrupt
            gen = torch.Generator().manual_seed(seed * 100_003 + k)
            batch = [{"image": torch.randn(4, generator=gen), "target": torch.randn(2, generator=gen)}
                     for _ in range(BATCH)]
            yield batch[rank::world_size]
    return make


def make_trainer(out: Path, *, init_seed: int = 0, max_iter: int = 10, noisy: bool = True, data=None,
                 **kwargs) -> Trainer:
    torch.manual_seed(init_seed)
    model = ToyDetector(noisy=noisy, nan_at=kwargs.pop("nan_at", None))
    groups = custom_param_groups(model, base_lr=0.05, weight_decay=None, backbone_multiplier=0.5)
    optimizer = make_optimizer(groups, name="ADAMW", base_lr=0.05, weight_decay=1e-4)
    scheduler = WarmupCosineLR(optimizer, max_iter=max_iter, base_lr=0.05, warmup_iters=3)
    kwargs.setdefault("checkpoint_period", 4)
    kwargs.setdefault("log_period", 2)
    return Trainer(model=model, optimizer=optimizer, scheduler=scheduler, make_data=data or toy_data(),
                   max_iter=max_iter, output_dir=out, clip=GradClip("value", 1.0), seed=7, tensorboard=False,
                   **kwargs)


def _iterations(out: Path) -> list[int]:
    return [json.loads(line)["iteration"] for line in (out / "metrics.json").read_text().splitlines()]


def _same_state(a: Trainer, b: Trainer) -> None:
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    for sa, sb in zip(a.optimizer.state_dict()["state"].values(), b.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _fresh_rngs(seed: int) -> None:
    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)


def test_stop_then_resume_equals_one_run(tmp_path):
    _fresh_rngs(0)
    whole = make_trainer(tmp_path / "whole")
    whole.train()
    assert {p.name for p in (tmp_path / "whole").glob("*.pth")} == {"model_0000003.pth", "model_0000007.pth",
                                                                   "model_final.pth"}
    _fresh_rngs(0)
    first = make_trainer(tmp_path / "parts", stop_iter=6)
    first.train()
    assert last_checkpoint(tmp_path / "parts").name == "model_0000005.pth"  # written where it stopped
    _fresh_rngs(123)  # a new process: other random states and other initial weights
    second = make_trainer(tmp_path / "parts", init_seed=5)
    assert second.resume(last_checkpoint(tmp_path / "parts")) == 6
    second.train()
    _same_state(whole, second)
    assert second.scheduler.state_dict() == whole.scheduler.state_dict()
    assert _iterations(tmp_path / "parts") == _iterations(tmp_path / "whole") == [2, 4, 6, 8, 10]


def test_crash_then_resume_with_fp16_loss_scaling(tmp_path):
    _fresh_rngs(1)
    whole = make_trainer(tmp_path / "whole", amp="fp16")
    whole.train()
    _fresh_rngs(1)
    crashed = make_trainer(tmp_path / "parts", amp="fp16", data=toy_data(crash_at=7))
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    assert _iterations(tmp_path / "parts") == [2, 4, 6]  # iteration 6 was logged after the checkpoint
    _fresh_rngs(99)
    resumed = make_trainer(tmp_path / "parts", amp="fp16", init_seed=3)
    assert resumed.resume(last_checkpoint(tmp_path / "parts")) == 4
    resumed.train()
    _same_state(whole, resumed)
    assert resumed.scaler.state_dict() == whole.scaler.state_dict()
    assert _iterations(tmp_path / "parts") == [2, 4, 6, 8, 10]  # the stale line 6 was replaced


def test_non_finite_loss_stops_without_saving_it(tmp_path):
    trainer = make_trainer(tmp_path, nan_at=3, checkpoint_period=1)
    with pytest.raises(DeticError) as info:
        trainer.train()
    message = str(info.value)
    assert "\n" not in message and message.startswith("iteration 3: non-finite loss")
    assert "loss_fit=nan" in message and "loss_reg=" in message and "total_loss=nan" in message
    assert {p.name for p in tmp_path.glob("*.pth")} == {"model_0000000.pth", "model_0000001.pth"}
    assert last_checkpoint(tmp_path).name == "model_0000001.pth"


def test_metrics_progress_and_evaluation_hook(tmp_path):
    seen, steps = [], []

    def evaluate(model, done):
        seen.append((done, model.training))
        return {"bbox/AP": 12.5}

    trainer = make_trainer(tmp_path, eval_period=4, eval_fn=evaluate, on_step=steps.append, log_period=3)
    trainer.tensorboard = True
    trainer.train()
    assert [s.iteration for s in steps] == list(range(1, 11)) and steps[-1].eta_seconds == 0
    assert seen == [(4, True), (8, True), (10, True)]  # the hook sets eval mode itself if it needs it
    lines = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    logs = [r for r in lines if "total_loss" in r]
    assert [r["iteration"] for r in logs] == [3, 6, 9, 10]
    assert set(logs[0]) == {"iteration", "lr", "loss_fit", "loss_reg", "total_loss", "time", "data_time",
                            "it_per_s", "eta_seconds"}
    assert [r["iteration"] for r in lines if "bbox/AP" in r] == [4, 8, 10]
    # line 3 shows the lr iteration index 2 ran with: the head's (the backbone's is halved), still in warmup
    warm_end = 0.5 * (1 + np.cos(np.pi * 3 / 10))
    assert logs[0]["lr"] == pytest.approx(0.05 * (warm_end * 2 / 3 + 0.001 / 3))
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_two_processes_with_gloo_match_one_process(tmp_path):
    """torchrun --nproc_per_node 2: DDP averages the gradients of the two half batches."""
    _fresh_rngs(0)
    single = make_trainer(tmp_path / "single", noisy=False, max_iter=6)
    single.train()
    script = Path(__file__).with_name("ddp_train_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path / "ddp")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp" / "model_final.pth", weights_only=True)
    assert len(ddp["rng"]) == 2 and ddp["data"]["world_size"] == 2
    for key, value in single.model.state_dict().items():
        assert torch.allclose(ddp["model"][key], value, atol=1e-6), key
    assert torch.equal(ddp["model"]["head.weight"], torch.load(tmp_path / "ddp" / "rank1.pt")["head.weight"])
    assert _iterations(tmp_path / "ddp") == [2, 4, 6]


def test_bf16_autocast_trains(tmp_path):
    trainer = make_trainer(tmp_path, amp="bf16", max_iter=3, noisy=False)
    before = trainer.model.head.weight.detach().clone()
    trainer.train()
    assert trainer.scaler is None and not torch.equal(before, trainer.model.head.weight)
    assert all(np.isfinite(json.loads(line)["total_loss"]) for line in (tmp_path / "metrics.json").open())


class Probe(nn.Module):
    """Records, per call, whether autocast is on and the dtype it produces or receives."""

    def __init__(self, seen: list, name: str) -> None:
        super().__init__()
        self.linear, self.seen, self.name = nn.Linear(4, 4), seen, name

    def forward(self, x):
        out = self.linear(x)
        self.seen.append((self.name, torch.is_autocast_enabled("cpu"), x.dtype, out.dtype))
        return {"p3": out} if self.name == "backbone" else out


class ProbeDetector(nn.Module):
    def __init__(self, seen: list, *, with_backbone: bool = True) -> None:
        super().__init__()
        if with_backbone:
            self.backbone = Probe(seen, "backbone")
        else:
            self.trunk = Probe(seen, "trunk")
        self.head = Probe(seen, "head")

    def forward(self, batch):
        x = torch.stack([b["image"] for b in batch])
        features = self.backbone(x)["p3"] if hasattr(self, "backbone") else self.trunk(x)
        out = self.head(features)
        return {"loss_fit": ((out.float() - torch.stack([b["target"][:1] for b in batch])) ** 2).mean()}


def _probe_trainer(out: Path, model: nn.Module, amp, max_iter: int = 1) -> Trainer:
    optimizer = make_optimizer(custom_param_groups(model, base_lr=0.01, weight_decay=None), name="ADAMW",
                               base_lr=0.01, weight_decay=1e-4)
    scheduler = WarmupCosineLR(optimizer, max_iter=max_iter, base_lr=0.01, warmup_iters=0)
    return Trainer(model=model, optimizer=optimizer, scheduler=scheduler, make_data=toy_data(), max_iter=max_iter,
                   output_dir=out, amp=amp, checkpoint_period=0, tensorboard=False)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_mixed_precision_covers_only_the_backbone_as_detic_fp16(tmp_path, amp):
    """Detic's CustomRCNN (FP16) autocasts the backbone alone and hands float32 features to the heads."""
    seen: list = []
    model = ProbeDetector(seen)
    _probe_trainer(tmp_path, model, amp).train()
    low = {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    assert seen == [("backbone", True, torch.float32, low), ("head", False, torch.float32, torch.float32)]
    assert "forward" not in model.backbone.__dict__  # the scope is undone after the step


def test_mixed_precision_without_a_backbone_autocasts_the_whole_forward(tmp_path):
    seen: list = []
    _probe_trainer(tmp_path, ProbeDetector(seen, with_backbone=False), "bf16").train()
    assert [(name, on, produced) for name, on, _, produced in seen] == [("trunk", True, torch.bfloat16),
                                                                         ("head", True, torch.bfloat16)]


class SometimesUnused(nn.Module):
    """`extra` takes part in the loss of the first iteration only (a head that later batches do not use)."""

    def __init__(self) -> None:
        super().__init__()
        self.head, self.extra, self.calls = nn.Linear(4, 2), nn.Parameter(torch.ones(2)), 0

    def forward(self, batch):
        self.calls += 1
        x = torch.stack([b["image"] for b in batch])
        out = self.head(x) + (self.extra if self.calls == 1 else 0)
        return {"loss_fit": (out ** 2).mean()}


def test_parameters_without_gradient_in_a_batch_keep_their_adamw_momentum(tmp_path):
    """The original zeroed gradients (torch 1.x): AdamW keeps moving a parameter by its momentum in batches
    that give it no gradient; with gradients set to None it would freeze there."""
    model = SometimesUnused()
    values = []
    trainer = _probe_trainer(tmp_path, model, None, max_iter=3)
    trainer.on_step = lambda step: values.append(model.extra.detach().clone())
    trainer.train()
    assert model.extra.grad is not None and torch.equal(model.extra.grad, torch.zeros(2))
    assert not torch.equal(values[0], values[1]) and not torch.equal(values[1], values[2])
    assert (values[2] < values[1]).all() and (values[1] < values[0]).all()  # still moving the same way


def test_step_in_two_parts_is_the_loop_step(tmp_path):
    """forward_backward + apply_step (what the training-parity test runs) is run_step: same losses, gradients
    left for inspection before any step, the step at the current iteration's lr, then the schedule moves on."""
    batch = next(toy_data()(0, 7))
    one, two = make_trainer(tmp_path / "a", noisy=False), make_trainer(tmp_path / "b", noisy=False)
    for trainer in (one, two):
        trainer.scheduler.load_state_dict({**trainer.scheduler.state_dict(), "last_iter": 2})
    values, lr = one.run_step(one.model, batch, 2)
    start = [p.detach().clone() for p in two.model.parameters()]
    parts = two.forward_backward(two.model, batch, 2)
    assert parts == values and set(parts) >= {"total_loss"}
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in two.model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(start, two.model.parameters()))  # no step yet
    assert two.apply_step() == lr == pytest.approx(0.05 * two.scheduler.factor(2))
    assert two.scheduler.last_iter == one.scheduler.last_iter == 3
    _same_state(one, two)
