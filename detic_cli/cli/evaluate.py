"""`detic eval`: a model on a benchmark -> COCO results, metrics JSON and a table; resumable.

Multi-GPU: `torchrun --nproc-per-node N -m detic_cli eval ...` (each rank evaluates every N-th
image; rank 0 merges and scores). An interrupted run continues where it stopped when rerun with
the same --output-dir.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from detic_cli.cli.app import app
from detic_cli.cli.options import (
    amp_option,
    backend_option,
    batch_size_option,
    clip_checkpoint_option,
    device_option,
    mirror_option,
    onnx_backend,
    onnx_option,
    vocab_file_option,
    vocab_names_option,
    vocab_option,
)
from detic_cli.data.catalog import LAYOUTS
from detic_cli.engine.evaluate import EvalReport
from detic_cli.engine.evaluate import evaluate as run_evaluation
from detic_cli.progress import BarProgress

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


@app.command("eval")
def evaluate(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str | None = typer.Option(None, "--row", "-m", help="Zoo row or checkpoint name (`detic zoo list`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Detic YAML (original or project)."),
    weights: Path | None = typer.Option(None, "--weights", "-w", help="Checkpoint in the official layout."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Named dataset, coco:ANN.json:IMAGES_DIR or "
                                                                   "lvis:ANN.json:IMAGES_DIR (default: the "
                                                                   "config's DATASETS.TEST)."),
    vocab: str | None = vocab_option("lvis | objects365 | openimages | coco | \"a,b\" | .npy (default: the named "
                                     "dataset's own)."),
    vocab_names: Path | None = vocab_names_option(),
    vocab_file: Path | None = vocab_file_option(),
    clip_checkpoint: Path | None = clip_checkpoint_option(),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="Results, metrics and resumable "
                                                                            "shards (default: eval/MODEL-DATA)."),
    device: str = device_option(),
    batch_size: int = batch_size_option(),
    amp: str = amp_option(),
    max_images: int | None = typer.Option(None, "--max-images", min=1, help="Stop after N new images (a "
                                                                            "rerun goes on)."),
    fresh: bool = typer.Option(False, "--fresh", help="Drop the shards of an earlier run in --output-dir."),
    mirror: str | None = mirror_option(),
    backend: str = backend_option(),
    onnx: Path | None = onnx_option(),
) -> None:
    """Evaluate a detector on a benchmark: COCO results, metrics.json and a table."""
    onnx_backend(backend, onnx)
    prebuilt = None
    if onnx is not None:
        from detic_cli.export.eval_model import exported_eval_model

        prebuilt = exported_eval_model(onnx, list(overrides or []))
    report = run_evaluation(model=row, config=config, weights=weights, dataset=dataset, vocab=vocab,
                            vocab_names=vocab_names, vocab_file=vocab_file, clip_checkpoint=clip_checkpoint,
                            output_dir=output_dir, device=device, batch_size=batch_size, amp=amp,
                            max_images=max_images, fresh=fresh, overrides=list(overrides or []), mirror=mirror,
                            prebuilt=prebuilt, progress=eval_progress())
    print_report(report)


def eval_progress() -> BarProgress:
    """The eval bar (done/total, elapsed, ETA) and its remarks, on stderr."""
    return BarProgress(_err, unit="items", bars=True)


def print_report(report: EvalReport) -> None:
    """Rank 0's account of a run: the images left, or the metrics table and where the files are."""
    if not report.main:
        return
    if report.left:
        _err.print(f"eval: stopped with {report.left} of {report.images} image(s) left; rerun the same command "
                   "to go on", highlight=False)
        return
    data = report.dataset
    table = Table(title=f"{data.name if data.name in LAYOUTS else data.annotation.name} ({data.kind})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.metrics.items():
        table.add_row(name, f"{value:.2f}")
    Console().print(table)
    _err.print(f"eval: {report.images} image(s); results {report.output_dir / 'results.json'}, metrics "
               f"{report.output_dir / 'metrics.json'}", highlight=False)
