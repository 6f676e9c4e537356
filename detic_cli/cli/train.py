"""`detic train`: a zoo row's recipe (or any config) -> checkpoints, metrics.json, TensorBoard events.

Multi-GPU / multi-node: `torchrun --nproc_per_node N [--nnodes M --node_rank R --master_addr HOST]
-m detic_cli train ...`; each process trains on SOLVER.IMS_PER_BATCH / N images per iteration and
rank 0 writes the files. `--resume` continues from the folder's `last_checkpoint` exactly.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from detic_cli.cli.app import app
from detic_cli.cli.common import resolve_device
from detic_cli.cli.train_eval import periodic_eval
from detic_cli.cli.train_inputs import check_datasets, fill_text_encoder, load_classifier
from detic_cli.config import CfgNode, load_config
from detic_cli.engine.build import amp_mode, draw_seed, output_dir, train_settings
from detic_cli.engine.checkpointer import last_checkpoint
from detic_cli.engine.evaluate_job import DistInfo, barrier, init_distributed
from detic_cli.engine.trainer import StepInfo, Trainer
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_write_bytes

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


def _say(dist: DistInfo, message: str) -> None:
    if dist.is_main:
        _err.print(f"train: {message}", highlight=False, soft_wrap=True)


def _config_path(row: str | None, config: Path | None) -> Path:
    if (row is None) == (config is None):
        raise DeticError("give either --row NAME (see `detic zoo list`) or --config YAML")
    if config is not None:
        return config
    from detic_cli.zoo.resolve import config_path, find_row, find_rows, find_stage

    stage = find_stage(row) if not find_rows(row) else None
    return config_path(stage.config if stage is not None else find_row(row).config)


def train_init_weights(row: str | None, weights: Path | None, cfg: CfgNode, mirror: str | None) -> Path | None:
    """--weights, else the row's init from the zoo, else the config's MODEL.WEIGHTS (`zoo://BACKBONE` pulled and
    converted; empty: the zoo's ImageNet backbone when MODEL.TIMM.PRETRAINED asks for one, else None: random init)."""
    if weights is not None:
        return weights
    if row is not None:
        from detic_cli.zoo.init_weights import resolve_init_weights

        return resolve_init_weights(row, mirror=mirror)
    spec = str(cfg.MODEL.WEIGHTS)
    if not spec:
        return _timm_pretrained(cfg, mirror)
    from detic_cli.zoo.init_weights import resolve_init_spec

    path = Path(resolve_init_spec(spec, mirror=mirror))
    if not path.is_file():
        raise DeticError(f"MODEL.WEIGHTS {spec}: file not found; train that stage first or give --weights PTH")
    return path


def _timm_pretrained(cfg: CfgNode, mirror: str | None) -> Path | None:
    """MODEL.TIMM.PRETRAINED with no MODEL.WEIGHTS: the original let timm load its ImageNet weights; here the zoo's
    copy of them (`timm:BASE_NAME`), pulled and converted. None when the config asks for no pretrained backbone."""
    if not cfg.MODEL.TIMM.PRETRAINED or "timm" not in cfg.MODEL.BACKBONE.NAME:
        return None
    from detic_cli.zoo.backbone_convert import pull_backbone
    from detic_cli.zoo.catalog import BACKBONES

    name = cfg.MODEL.TIMM.BASE_NAME
    backbone = next((b for b in BACKBONES if b.original_weights == f"timm:{name}"), None)
    if backbone is None:
        raise DeticError(f"MODEL.TIMM.PRETRAINED: the zoo has no ImageNet weights for MODEL.TIMM.BASE_NAME {name}; "
                         "give them with --weights PTH (see `detic convert-pretrained`), or set "
                         "MODEL.TIMM.PRETRAINED=False to start from random init")
    return pull_backbone(backbone, mirror=mirror).path


def _resolve_init(row: str | None, weights: Path | None, cfg: CfgNode, mirror: str | None,
                  dist: DistInfo) -> Path | None:
    if not dist.is_main:  # rank 0 pulls/converts first; the others then read the cache
        barrier(dist)
    path = train_init_weights(row, weights, cfg, mirror)
    if dist.is_main:
        barrier(dist)
    if path is not None and not path.is_file():
        raise DeticError(f"{path}: checkpoint not found")
    return path


def _load_init(model, path: Path | None, dist: DistInfo, clip_checkpoint: str | None) -> None:
    from detic_cli.engine.warm_start import load_init_weights

    if path is None:
        _say(dist, "no initial weights (MODEL.WEIGHTS is empty): training from random init")
        missing = None
    else:
        report = load_init_weights(model, path)
        _say(dist, "init " + report.summary())
        missing = report.missing
    note = fill_text_encoder(model, missing, clip_checkpoint)
    if note:
        _say(dist, note)


def _seed(settings_seed: int | None, dist: DistInfo) -> int:
    seed = settings_seed if settings_seed is not None else draw_seed()
    if dist.world_size > 1:
        import torch.distributed as tdist

        box = [seed]
        tdist.broadcast_object_list(box, src=0)
        seed = int(box[0])
    return seed


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _output(out: Path, resume: bool, dist: DistInfo) -> Path | None:
    """The checkpoint to resume from (None: a new run); refuses to overwrite another run's checkpoints."""
    found = last_checkpoint(out)
    if found is not None and not resume:
        raise DeticError(f"--output-dir {out}: holds the checkpoints of a training run ({found.name}); add --resume "
                         "to continue it, or choose another --output-dir")
    if resume and found is None:
        _say(dist, f"--resume: no checkpoint in {out} yet, starting a new run")
    return found


def _same_checkpoint_everywhere(found: Path | None, out: Path, dist: DistInfo) -> None:
    """Every process must resume from the same file (multi-node: --output-dir on a shared filesystem)."""
    if dist.world_size <= 1:
        return
    import torch.distributed as tdist

    seen: list[str | None] = [None] * dist.world_size
    tdist.all_gather_object(seen, None if found is None else found.name)
    if len(set(seen)) > 1:
        raise DeticError(f"--output-dir {out}: the processes see different checkpoints ({sorted(map(str, seen))}); "
                         "put it on a filesystem every node shares")


def _progress_bar(disable: bool) -> Progress:
    columns = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TextColumn("lr {task.fields[lr]}"), TextColumn("{task.fields[speed]} it/s"),
               TextColumn("ETA {task.fields[eta]}")]
    return Progress(*columns, console=_err, disable=disable)


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@app.command("train")
def train(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str | None = typer.Option(None, "--row", "-m", help="Zoo row or stage whose recipe to train (its "
                                                            "configs/<row>.yaml; `detic zoo list`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    output_dir_opt: Path | None = typer.Option(None, "--output-dir", "-o", help="Checkpoints, metrics.json, "
                                                                               "events (default: cfg.OUTPUT_DIR)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the output folder's last_checkpoint."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Initial weights (detector format; missing "
                                                                     "head keys are reported, not an error)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]"),
    amp: str | None = typer.Option(None, "--amp", help="fp16 | bf16 | off: mixed precision of the backbone, as "
                                                       "Detic's FP16 (default: FP16 / SOLVER.AMP.ENABLED of the "
                                                       "config, on CUDA)."),
    max_iter: int | None = typer.Option(None, "--max-iter", min=1, help="Stop after N iterations (the schedule "
                                                                        "still spans SOLVER.MAX_ITER; --resume "
                                                                        "goes on)."),
    log_period: int = typer.Option(20, "--log-period", min=1, help="Iterations per metrics.json line."),
    mirror: str | None = typer.Option(None, "--mirror", help="Base URL or folder standing in for public hosts."),
    clip_checkpoint: str | None = typer.Option(None, "--clip-checkpoint", help="CLIP file for the caption models' "
                                               "text tower (default: open_clip ViT-B-32 openai, cached or fetched)."),
) -> None:
    """Train a detector: a zoo row's recipe or any config, on one or many GPUs (torchrun)."""
    dist = DistInfo.from_env()
    torch_device = resolve_device(device)
    if dist.world_size > 1 and torch_device.type == "cuda":
        torch_device = resolve_device(f"cuda:{dist.local_rank}")
    config_path = _config_path(row, config)
    cfg = load_config(config_path, list(overrides or []))
    out = output_dir_opt or output_dir(cfg, config_path)
    amp_dtype, note = amp_mode(cfg, amp, torch_device.type)
    if note:
        _say(dist, note)
    settings = train_settings(cfg, max_iter_flag=max_iter, world_size=dist.world_size)
    embeddings = load_classifier(cfg)
    check_datasets(cfg)
    evaluate = periodic_eval(cfg, output_dir=out, device=torch_device, dist=dist, mirror=mirror)
    resume_from = _output(out, resume, dist)
    init_distributed(dist, torch_device.type == "cuda")
    _same_checkpoint_everywhere(resume_from, out, dist)
    if resume_from is not None and weights is not None:
        _say(dist, "--weights is ignored when resuming: the checkpoint holds the weights")
    init = _resolve_init(row, weights, cfg, mirror, dist) if resume_from is None else None
    trainer = _trainer(cfg, dist, torch_device, out, settings, amp_dtype, embeddings, log_period)
    trainer.eval_fn = evaluate
    if resume_from is not None:
        trainer.resume(resume_from)
        _say(dist, f"resuming from {resume_from} at iteration {trainer.start_iter + 1}")
    else:
        _load_init(trainer.model, init, dist, clip_checkpoint)
    if dist.is_main:
        atomic_write_bytes(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    _run(trainer, dist)
    more = "; --resume goes on from there" if trainer.stop_iter < trainer.max_iter else ""
    _say(dist, f"stopped after iteration {trainer.stop_iter} of {trainer.max_iter}; checkpoints and metrics.json "
               f"in {out}{more}")
    _finish(dist)


def _trainer(cfg: CfgNode, dist: DistInfo, device, out: Path, settings, amp_dtype, embeddings,
             log_period: int) -> Trainer:
    import torch

    from detic_cli.data.build import build_train_loader
    from detic_cli.engine.train_setup import build_train_parts

    seed = _seed(settings.seed, dist)
    _seed_all(seed + dist.rank)
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    parts = build_train_parts(cfg, device=device, embeddings=embeddings)

    def make_data(start_iter: int, data_seed: int):
        return build_train_loader(cfg, rank=dist.rank, world_size=dist.world_size, start_iter=start_iter,
                                  seed=data_seed)

    return Trainer(model=parts.model, optimizer=parts.optimizer, scheduler=parts.scheduler,
                   make_data=make_data, max_iter=settings.max_iter, stop_iter=settings.stop_iter, output_dir=out,
                   device=device, amp=amp_dtype, clip=parts.clip, checkpoint_period=settings.checkpoint_period,
                   log_period=log_period, rank=dist.rank, world_size=dist.world_size,
                   find_unused_parameters=settings.find_unused_parameters, seed=seed, eval_period=settings.eval_period,
                   log=lambda message: _say(dist, message))


def progress_line(step: StepInfo) -> str:
    """The progress as one log line (stderr not a terminal: job logs, `2> train.log`)."""
    return (f"iteration {step.iteration}/{step.stop_iter}  loss {step.total_loss:.4g}  lr {step.lr:.3g}  "
            f"{step.it_per_s:.2f} it/s  ETA {_eta(step.eta_seconds)}")


def _run(trainer: Trainer, dist: DistInfo) -> None:
    """The live bar on a terminal; otherwise a progress line every --log-period iterations and at the end."""
    plain = not _err.is_terminal
    with _progress_bar(disable=not dist.is_main or plain) as bar:
        task = bar.add_task("train", total=trainer.stop_iter, completed=trainer.start_iter, loss="-", lr="-",
                            speed="-", eta="-")

        def show(step: StepInfo) -> None:
            bar.update(task, completed=step.iteration, loss=f"{step.total_loss:.4g}", lr=f"{step.lr:.3g}",
                       speed=f"{step.it_per_s:.2f}", eta=_eta(step.eta_seconds))
            if plain and (step.iteration % trainer.log_period == 0 or step.iteration == step.stop_iter):
                _say(dist, progress_line(step))

        trainer.on_step = show
        trainer.train()


def _finish(dist: DistInfo) -> None:
    if dist.world_size > 1:
        import torch.distributed as tdist

        barrier(dist)
        tdist.destroy_process_group()
