"""The training job under `detic train`: a zoo row's recipe (or any config) -> checkpoints, metrics.json,
TensorBoard events in an output folder.

Multi-GPU / multi-node: under `torchrun` each process trains on SOLVER.IMS_PER_BATCH / N images per
iteration and rank 0 writes the files and reports. `resume` continues from the folder's `last_checkpoint`
exactly. Everything a run needs (vocabulary, datasets, evaluation targets, the checkpoint to resume) is
checked before the model is built; each problem is one DeticError.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detic_cli.config import CfgNode, load_config
from detic_cli.engine.build import (
    InitSettings,
    TrainSettings,
    amp_mode,
    config_yaml,
    draw_seed,
    eval_settings,
    init_settings,
    train_input_settings,
    train_settings,
)
from detic_cli.engine.build import output_dir as default_output_dir
from detic_cli.engine.checkpointer import last_checkpoint
from detic_cli.engine.dist import (
    DistInfo,
    all_gather_object,
    barrier,
    broadcast_object,
    destroy_distributed,
    init_distributed,
    local_device,
)
from detic_cli.engine.init_weights import train_init_weights
from detic_cli.engine.train_eval import periodic_eval
from detic_cli.engine.train_inputs import check_train_data, classifier_table, fill_text_encoder
from detic_cli.engine.trainer import StepInfo, Trainer
from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress, Progress
from detic_cli.utils import atomic_write_bytes

__all__ = ["TrainReport", "train", "train_config_path"]


@dataclass(frozen=True)
class TrainReport:
    """What one call did: iterations `start_iter + 1 .. stop_iter` of a `max_iter` schedule ran; checkpoints,
    config.yaml and metrics.json are in `output_dir`; `main`: this process is rank 0 (the one that writes)."""

    output_dir: Path
    start_iter: int
    stop_iter: int
    max_iter: int
    main: bool


@dataclass(frozen=True)
class _Run:
    """The settings of one call, resolved."""

    cfg: CfgNode
    out: Path
    device: torch.device
    dist: DistInfo
    note: Callable[[str], None]


def train(*, row: str | None = None, config: str | Path | None = None, weights: str | Path | None = None,
          output_dir: str | Path | None = None, resume: bool = False, amp: str | None = None,
          max_iter: int | None = None, device: str = "auto", overrides: Sequence[str] = (),
          mirror: str | None = None, clip_checkpoint: str | None = None, log_period: int = 20,
          progress: Progress | None = None, on_step: Callable[[StepInfo], None] | None = None) -> TrainReport:
    """Train the recipe of zoo `row` (or `config`) from `weights` (default: the row's init, else MODEL.WEIGHTS)
    into `output_dir` (default the config's OUTPUT_DIR). amp: fp16 | bf16 | off (default the config's). max_iter: stop
    after that many iterations (the schedule still spans SOLVER.MAX_ITER). progress hears (rank 0 only) of
    the iterations and the run's remarks; on_step gets each iteration's StepInfo (loss, lr, speed, ETA)."""
    dist = DistInfo.from_env()
    report = progress if progress is not None and dist.is_main else NullProgress()
    config_path = train_config_path(row, Path(config) if config is not None else None)
    cfg = load_config(config_path, list(overrides))
    out = Path(output_dir) if output_dir is not None else default_output_dir(cfg, config_path)
    run = _Run(cfg, out, local_device(device, dist), dist, lambda message: report.note(f"train: {message}"))
    trainer, resume_from, init = _prepare(run, row=row, weights=Path(weights) if weights else None, resume=resume,
                                          amp=amp, max_iter=max_iter, mirror=mirror, log_period=log_period)
    if resume_from is not None:
        trainer.resume(resume_from)
        run.note(f"resuming from {resume_from} at iteration {trainer.start_iter + 1}")
    else:
        _load_init(trainer.model, init, run, clip_checkpoint)
    if dist.is_main:
        atomic_write_bytes(out / "config.yaml", config_yaml(cfg))
    start = trainer.start_iter
    _run_loop(trainer, report, on_step if dist.is_main else None)
    more = "; --resume goes on from there" if trainer.stop_iter < trainer.max_iter else ""
    run.note(f"stopped after iteration {trainer.stop_iter} of {trainer.max_iter}; checkpoints and metrics.json "
             f"in {out}{more}")
    destroy_distributed(dist)
    return TrainReport(out, start, trainer.stop_iter, trainer.max_iter, dist.is_main)


def _prepare(run: _Run, *, row: str | None, weights: Path | None, resume: bool, amp: str | None,
             max_iter: int | None, mirror: str | None, log_period: int) -> tuple[Trainer, Path | None, Path | None]:
    """(the trainer, the checkpoint to resume from, the initial weights): every check first, then the model."""
    cfg, dist = run.cfg, run.dist
    amp_dtype, amp_note = amp_mode(cfg, amp, run.device.type)
    if amp_note:
        run.note(amp_note)
    settings = train_settings(cfg, max_iter_flag=max_iter, world_size=dist.world_size)
    inputs = train_input_settings(cfg)
    embeddings = classifier_table(inputs)
    check_train_data(inputs)
    evaluate = periodic_eval(eval_settings(cfg), output_dir=run.out, device=run.device, dist=dist, mirror=mirror)
    resume_from = _resume_point(run, resume)
    init_distributed(dist, run.device.type == "cuda")
    _same_checkpoint_everywhere(resume_from, run.out, dist)
    if resume_from is not None and weights is not None:
        run.note("--weights is ignored when resuming: the checkpoint holds the weights")
    init = _resolve_init(row, weights, init_settings(cfg), mirror, dist) if resume_from is None else None
    trainer = _trainer(run, settings, amp_dtype, embeddings, log_period)
    trainer.eval_fn = evaluate
    return trainer, resume_from, init


def train_config_path(row: str | None, config: Path | None) -> Path:
    """The YAML of `--row NAME` (a zoo row or unpublished stage) or `--config`; exactly one must be given."""
    if (row is None) == (config is None):
        raise DeticError("give either --row NAME (see `detic zoo list`) or --config YAML")
    if config is not None:
        return config
    from detic_cli.zoo.resolve import config_path, find_row, find_rows, find_stage

    stage = find_stage(row) if not find_rows(row) else None
    return config_path(stage.config if stage is not None else find_row(row).config)


def _resolve_init(row: str | None, weights: Path | None, settings: InitSettings, mirror: str | None,
                  dist: DistInfo) -> Path | None:
    if not dist.is_main:  # rank 0 pulls/converts first; the others then read the cache
        barrier(dist)
    path = train_init_weights(row, weights, settings, mirror)
    if dist.is_main:
        barrier(dist)
    if path is not None and not path.is_file():
        raise DeticError(f"{path}: checkpoint not found")
    return path


def _load_init(model: torch.nn.Module, path: Path | None, run: _Run, clip_checkpoint: str | None) -> None:
    from detic_cli.engine.warm_start import load_init_weights

    if path is None:
        run.note("no initial weights (MODEL.WEIGHTS is empty): training from random init")
        missing = None
    else:
        loaded = load_init_weights(model, path)
        run.note("init " + loaded.summary())
        missing = loaded.missing
    text = fill_text_encoder(model, missing, clip_checkpoint)
    if text:
        run.note(text)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resume_point(run: _Run, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: a new run); refuses to overwrite another run's checkpoints."""
    found = last_checkpoint(run.out)
    if found is not None and not resume:
        raise DeticError(f"--output-dir {run.out}: holds the checkpoints of a training run ({found.name}); add "
                         "--resume to continue it, or choose another --output-dir")
    if resume and found is None:
        run.note(f"--resume: no checkpoint in {run.out} yet, starting a new run")
    return found


def _same_checkpoint_everywhere(found: Path | None, out: Path, dist: DistInfo) -> None:
    """Every process must resume from the same file (multi-node: --output-dir on a shared filesystem)."""
    if dist.world_size <= 1:
        return
    seen = all_gather_object(None if found is None else found.name, dist.world_size)
    if len(set(seen)) > 1:
        raise DeticError(f"--output-dir {out}: the processes see different checkpoints ({sorted(map(str, seen))}); "
                         "put it on a filesystem every node shares")


def _trainer(run: _Run, settings: TrainSettings, amp_dtype, embeddings: np.ndarray | None, log_period: int) -> Trainer:
    from detic_cli.data.build import build_train_loader
    from detic_cli.engine.train_setup import build_train_parts

    cfg, dist = run.cfg, run.dist
    seed = int(broadcast_object(settings.seed if settings.seed is not None else draw_seed(), dist))
    _seed_all(seed + dist.rank)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    parts = build_train_parts(cfg, device=run.device, embeddings=embeddings)

    def make_data(start_iter: int, data_seed: int):
        return build_train_loader(cfg, rank=dist.rank, world_size=dist.world_size, start_iter=start_iter,
                                  seed=data_seed)

    return Trainer(model=parts.model, optimizer=parts.optimizer, scheduler=parts.scheduler,
                   make_data=make_data, max_iter=settings.max_iter, stop_iter=settings.stop_iter, output_dir=run.out,
                   device=run.device, amp=amp_dtype, clip=parts.clip, checkpoint_period=settings.checkpoint_period,
                   log_period=log_period, rank=dist.rank, world_size=dist.world_size,
                   find_unused_parameters=settings.find_unused_parameters, seed=seed, eval_period=settings.eval_period,
                   log=run.note)


def _run_loop(trainer: Trainer, progress: Progress, on_step: Callable[[StepInfo], None] | None) -> None:
    def step(info: StepInfo) -> None:
        progress.advance(1)
        if on_step is not None:
            on_step(info)

    if trainer.start_iter < trainer.stop_iter:
        progress.start("train", total=trainer.stop_iter, completed=trainer.start_iter)
    trainer.on_step = step
    try:
        trainer.train()
    finally:
        progress.finish()
