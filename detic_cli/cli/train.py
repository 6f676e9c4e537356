"""`detic train`: a zoo row's recipe (or any config) -> checkpoints, metrics.json, TensorBoard events.

Multi-GPU / multi-node: `torchrun --nproc_per_node N [--nnodes M --node_rank R --master_addr HOST]
-m detic_cli train ...`; each process trains on SOLVER.IMS_PER_BATCH / N images per iteration and
rank 0 writes the files. `--resume` continues from the folder's `last_checkpoint` exactly. The job
itself is `detic_cli.engine.train_job.train`; this module parses, calls it and shows its progress.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.cli.options import amp_option, device_option, mirror_option
from detic_cli.engine.trainer import StepInfo
from detic_cli.progress import progress_bar

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim
_FIELDS = ("loss {task.fields[loss]}", "lr {task.fields[lr]}", "{task.fields[speed]} it/s", "ETA {task.fields[eta]}")


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_line(step: StepInfo) -> str:
    """The progress as one log line (stderr not a terminal: job logs, `2> train.log`)."""
    return (f"iteration {step.iteration}/{step.stop_iter}  loss {step.total_loss:.4g}  lr {step.lr:.3g}  "
            f"{step.it_per_s:.2f} it/s  ETA {_eta(step.eta_seconds)}")


class _TrainBar:
    """The live bar (loss, lr, speed, ETA) on a terminal; otherwise a progress line every `log_period`
    iterations and at the end. Remarks are printed either way."""

    def __init__(self, log_period: int) -> None:
        self.log_period, self.plain = log_period, not _err.is_terminal
        self._bar = progress_bar("train", _err, disable=self.plain, fields=_FIELDS)
        self._task = None

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, completed=completed, loss="-", lr="-", speed="-",
                                        eta="-")

    def advance(self, amount: int) -> None:
        pass  # `show` sets the count with the step's figures

    def finish(self) -> None:
        self._bar.stop()

    def note(self, message: str) -> None:
        _err.print(message, highlight=False, soft_wrap=True)

    def show(self, step: StepInfo) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=step.iteration, loss=f"{step.total_loss:.4g}",
                             lr=f"{step.lr:.3g}", speed=f"{step.it_per_s:.2f}", eta=_eta(step.eta_seconds))
        if self.plain and (step.iteration % self.log_period == 0 or step.iteration == step.stop_iter):
            self.note(f"train: {progress_line(step)}")


@app.command("train")
def train(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str | None = typer.Option(None, "--row", "-m", help="Zoo row or stage whose recipe to train (its "
                                                            "configs/<row>.yaml; `detic zoo list`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Checkpoints, metrics.json, "
                                                                           "events (default: cfg.OUTPUT_DIR)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the output folder's last_checkpoint."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Initial weights (detector format; missing "
                                                                     "head keys are reported, not an error)."),
    device: str = device_option(),
    amp: str | None = amp_option(None, "fp16 | bf16 | off: mixed precision of the backbone, as Detic's FP16 "
                                       "(default: FP16 / SOLVER.AMP.ENABLED of the config, on CUDA)."),
    max_iter: int | None = typer.Option(None, "--max-iter", min=1, help="Stop after N iterations (the schedule "
                                                                        "still spans SOLVER.MAX_ITER; --resume "
                                                                        "goes on)."),
    log_period: int = typer.Option(20, "--log-period", min=1, help="Iterations per metrics.json line."),
    mirror: str | None = mirror_option(),
    clip_checkpoint: str | None = typer.Option(None, "--clip-checkpoint", help="CLIP file for the caption models' "
                                               "text tower (default: open_clip ViT-B-32 openai, cached or fetched)."),
) -> None:
    """Train a detector: a zoo row's recipe or any config, on one or many GPUs (torchrun)."""
    from detic_cli.engine.train_job import train as train_job

    bar = _TrainBar(log_period)
    train_job(row=row, config=config, weights=weights, output_dir=output_dir, resume=resume, amp=amp,
              max_iter=max_iter, device=device, overrides=list(overrides or []), mirror=mirror,
              clip_checkpoint=clip_checkpoint, log_period=log_period, progress=bar, on_step=bar.show)
