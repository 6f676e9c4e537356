"""The training loop: model losses -> backward -> clipped optimizer step -> schedule, with AMP, DDP,
periodic checkpoints / evaluation / metrics, an exact `--resume`, and a stop on non-finite losses.

Iterations are counted 0-based inside the loop (`i`) and 1-based in what users see (metrics lines,
messages: "iteration i + 1" = iterations finished). A model in training mode maps a batch (list of
per-image dicts, see the training contract) to a dict of scalar `loss_*` tensors; their sum is the
loss. Under `torchrun` (world_size > 1) the model is wrapped in DistributedDataParallel and every
process must run the same iterations; rank 0 alone writes files.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from detic_cli.engine.amp import autocast_scope
from detic_cli.engine.checkpointer import (
    capture_rng,
    checkpoint_name,
    load_checkpoint_file,
    restore_rng,
    save_checkpoint,
)
from detic_cli.engine.dist import all_gather_object
from detic_cli.engine.lr_schedule import LRMultiplier
from detic_cli.engine.optim import GradClip, clip_gradients
from detic_cli.engine.train_metrics import MetricsLog, Window
from detic_cli.errors import DeticError

AmpDtype = Literal["fp16", "bf16"]
Batch = list[dict[str, Any]]
MakeData = Callable[[int, int], Iterable[Batch]]  # (start_iter, seed) -> this process's batches
EvalFn = Callable[[nn.Module, int], "dict[str, float] | None"]  # (model, iterations done) -> metrics
FINAL = "model_final.pth"


@dataclass(frozen=True)
class StepInfo:
    """What the progress line shows after each iteration (losses averaged over this process only)."""

    iteration: int  # iterations finished
    stop_iter: int
    total_loss: float
    lr: float
    it_per_s: float
    eta_seconds: float


def load_error_detail(exc: BaseException) -> str:
    """The first informative line of a state-dict loading error ("size mismatch for KEY: ...", "Missing key(s)
    ..."), not torch's "Error(s) in loading state_dict for CustomRCNN:" header; at most 200 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.endswith(":")] or lines or [type(exc).__name__]
    return useful[0][:200]


class Trainer:
    """Runs iterations `start_iter .. stop_iter - 1` of a `max_iter` schedule.

    make_data(start_iter, seed) gives this process's batches from `start_iter` on. amp: None (fp32),
    "fp16" (autocast + GradScaler) or "bf16" (autocast); as Detic's FP16, only `model.backbone` is autocast
    (heads and losses stay float32, see engine/amp.py). checkpoint_period: write `model_NNNNNNN.pth`
    every that many iterations (0: never), `model_final.pth` at max_iter, and a checkpoint where the
    run stops early (stop_iter < max_iter). eval_fn(model, iterations_done) runs every `eval_period`
    iterations and at max_iter (0: never) on every process. on_step gets a StepInfo per iteration.
    """

    def __init__(self, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: LRMultiplier,
                 make_data: MakeData, max_iter: int, output_dir: Path, device: torch.device | None = None,
                 amp: AmpDtype | None = None, clip: GradClip | None = None, checkpoint_period: int = 5000,
                 stop_iter: int | None = None, eval_period: int = 0, eval_fn: EvalFn | None = None,
                 log_period: int = 20, rank: int = 0, world_size: int = 1, find_unused_parameters: bool = True,
                 seed: int = 0, tensorboard: bool = True, on_step: Callable[[StepInfo], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        if amp not in (None, "fp16", "bf16"):
            raise DeticError(f"--amp {amp!r}: expected fp16, bf16 or off")
        self.model, self.optimizer, self.scheduler, self.make_data = model, optimizer, scheduler, make_data
        self.max_iter = max_iter
        self.stop_iter = max_iter if stop_iter is None or stop_iter <= 0 else min(stop_iter, max_iter)
        self.output_dir = Path(output_dir)
        self.device = device or next(model.parameters()).device
        self.amp_dtype = {None: None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None
        self.clip, self.checkpoint_period, self.log_period = clip, checkpoint_period, max(1, log_period)
        self.eval_period, self.eval_fn = eval_period, eval_fn
        self.rank, self.world_size, self.find_unused = rank, world_size, find_unused_parameters
        self.seed, self.tensorboard, self.on_step = seed, tensorboard, on_step
        self.log = log or (lambda message: None)
        self.start_iter = 0
        self._rng: dict[str, Any] | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- checkpoints -------------------------------------------------------------------------------
    def state(self, iteration: int) -> dict[str, Any]:
        """Everything a resumed run needs after iteration `iteration` (0-based) finished. Collective
        under DDP (the random states of every process are gathered)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "iteration": iteration,
                "data": {"batches": iteration + 1, "world_size": self.world_size, "seed": self.seed},
                "rng": all_gather_object(capture_rng(), self.world_size)}

    def _save(self, names: list[str], iteration: int) -> None:
        state = self.state(iteration)
        if self.is_main:
            for name in names:
                save_checkpoint(self.output_dir, name, state)

    def resume(self, path: Path) -> int:
        """Load a checkpoint of this trainer's kind; training goes on at the iteration after it."""
        ckpt = load_checkpoint_file(path)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise DeticError(f"{path}: does not fit this model and solver ({load_error_detail(exc)}); resume with "
                             f"the run's config and overrides (they are in {path.parent / 'config.yaml'}), or start "
                             "a new --output-dir") from exc
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_iter = int(ckpt["iteration"]) + 1
        data, rngs = ckpt.get("data") or {}, ckpt.get("rng") or []
        self.seed = int(data.get("seed", self.seed))
        if data.get("world_size") == self.world_size and len(rngs) == self.world_size:
            self._rng = rngs[self.rank]
        else:
            self.log(f"{path.name} was written by {data.get('world_size')} process(es), this run has "
                     f"{self.world_size}: data order and random states differ from an uninterrupted run")
        return self.start_iter

    # --- one iteration -----------------------------------------------------------------------------
    def _losses(self, net: nn.Module, batch: Batch) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """(sorted loss names, their detached values followed by the total, the total to backward)."""
        with autocast_scope(self.model, self.device.type, self.amp_dtype):
            loss_dict = net(batch)
        keys = sorted(loss_dict)
        if not keys:
            raise DeticError("the model returned no loss_* terms in training mode")
        total = sum(loss_dict[k].float() for k in keys)
        values = torch.stack([loss_dict[k].detach().float().reshape(()) for k in keys] + [total.detach()])
        return keys, values, total

    def _check_finite(self, keys: list[str], values: torch.Tensor, iteration: int) -> list[float]:
        """Host copy of `values`; a DeticError on every process when any process saw a non-finite loss."""
        flag = (~torch.isfinite(values)).any().float().reshape(1)
        local_bad = flag
        if self.world_size > 1:
            import torch.distributed as dist

            flag = flag.clone()
            dist.all_reduce(flag)
        host = torch.cat([values, flag, local_bad]).tolist()
        if host[-2] > 0:
            terms = ", ".join(f"{k}={v:.4g}" for k, v in zip(keys + ["total_loss"], host[:-2]))
            where = "" if self.world_size == 1 else (f" on rank {self.rank}" if host[-1] > 0 else " on another rank")
            raise DeticError(f"iteration {iteration + 1}: non-finite loss{where} ({terms}); stopped without saving "
                             "this state: lower SOLVER.BASE_LR, enable SOLVER.CLIP_GRADIENTS or check the data")
        return host[:-2]

    def _optimizer_step(self) -> None:
        if self.scaler is not None:
            if self.clip is not None:
                self.scaler.unscale_(self.optimizer)
                clip_gradients(self.optimizer, self.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return
        if self.clip is not None:
            clip_gradients(self.optimizer, self.clip)
        self.optimizer.step()

    def forward_backward(self, net: nn.Module, batch: Batch, iteration: int) -> dict[str, float]:
        """The batch's losses and their gradients (accumulated in `.grad`, unclipped, loss-scaled under fp16):
        loss values incl. total_loss; a DeticError when any is not finite."""
        keys, values, total = self._losses(net, batch)
        # zeros, not None (torch 1.x, which the original trained with): a parameter that got a gradient
        # before but takes no part in this batch's loss still gets its AdamW/SGD momentum and weight-decay
        # updates, as in the original
        self.optimizer.zero_grad(set_to_none=False)
        (self.scaler.scale(total) if self.scaler is not None else total).backward()
        host = self._check_finite(keys, values, iteration)
        return dict(zip(keys + ["total_loss"], host))

    def apply_step(self) -> float:
        """Clip the gradients of `forward_backward`, step the optimizer with the lrs of the current iteration,
        then move the schedule on to the next one; returns the largest lr of the step's parameter groups."""
        self._optimizer_step()
        lr = max(float(group["lr"]) for group in self.optimizer.param_groups)
        self.scheduler.step()
        return lr

    def run_step(self, net: nn.Module, batch: Batch, iteration: int) -> tuple[dict[str, float], float]:
        """One iteration: (loss values incl. total_loss, the largest lr of its parameter groups)."""
        values = self.forward_backward(net, batch, iteration)
        return values, self.apply_step()

    # --- the loop ----------------------------------------------------------------------------------
    def _wrap(self) -> nn.Module:
        if self.world_size <= 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
            if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=self.find_unused)

    def _data(self) -> Iterator[Batch]:
        """The batches from `start_iter` on. The first one is fetched before a resumed run's random
        states are put back: a loader may draw from the global generators when it starts its workers."""
        data = iter(self.make_data(self.start_iter, self.seed))
        first = next(data, None)
        if self._rng is not None:
            restore_rng(self._rng)
            self._rng = None
        return itertools.chain([first], data) if first is not None else iter(())

    def train(self) -> None:
        """Run the loop to `stop_iter`; checkpoints and metrics go to `output_dir`."""
        if self.start_iter >= self.stop_iter:
            self.log(f"nothing to do: {self.start_iter} of {self.stop_iter} iterations are done")
            return
        metrics = MetricsLog(self.output_dir, start_iter=self.start_iter, enabled=self.is_main,
                             tensorboard=self.tensorboard)
        data, net = self._data(), self._wrap()
        net.train()
        window, window_start = Window(), time.perf_counter()
        try:
            for i in range(self.start_iter, self.stop_iter):
                start = time.perf_counter()
                batch = next(data, None)
                if batch is None:
                    raise DeticError(f"the training data ran out after {i} iterations")
                fetched = time.perf_counter()
                values, lr = self.run_step(net, batch, i)
                window.add({**values, "time": time.perf_counter() - start, "data_time": fetched - start})
                window_start = self._after_step(i, window, window_start, lr, metrics)
        finally:
            metrics.close()

    def _after_step(self, i: int, window: Window, window_start: float, lr: float, metrics: MetricsLog) -> float:
        done = i + 1
        speed = len(window.rows) / max(time.perf_counter() - window_start, 1e-9)
        if self.on_step is not None:
            self.on_step(StepInfo(done, self.stop_iter, window.rows[-1]["total_loss"], lr, speed,
                                  (self.stop_iter - done) / speed))
        if self.eval_fn is not None and self.eval_period > 0 and (done % self.eval_period == 0 or
                                                                  done == self.max_iter):
            results = self.eval_fn(self.model, done) or {}
            self.model.train()
            metrics.write({"iteration": done, **results})
        if done % self.log_period == 0 or done == self.stop_iter:
            self._write_metrics(done, window, lr, speed, metrics)
            window.clear()
            window_start = time.perf_counter()
        names = [checkpoint_name(i)] if self.checkpoint_period > 0 and done % self.checkpoint_period == 0 else []
        if done == self.max_iter:
            names.append(FINAL)
        elif done == self.stop_iter and not names:
            names.append(checkpoint_name(i))
        if names:
            self._save(names, i)
        return window_start

    def _write_metrics(self, done: int, window: Window, lr: float, speed: float, metrics: MetricsLog) -> None:
        medians = all_gather_object(window.medians(), self.world_size)
        keys = dict.fromkeys(k for m in medians for k in m)
        record: dict[str, Any] = {"iteration": done, "lr": lr}
        record.update({k: sum(m[k] for m in medians if k in m) / sum(k in m for m in medians) for k in keys})
        record["it_per_s"] = speed
        record["eta_seconds"] = (self.stop_iter - done) * record["time"]
        if self.device.type == "cuda":
            record["max_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        metrics.write(record)
