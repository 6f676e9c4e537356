"""`detic cross-eval`: a zoo model on Objects365 and OpenImages, printed as the zoo's cross-dataset table.

Each benchmark runs as `detic eval` does (engine/cross_eval_job.py: resumable shards, results.json and
metrics.json in `--output-dir/<dataset>/`) with the model's cross-dataset settings; `cross_eval.json` sums
up the measured numbers beside the published ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from detic_cli.cli.app import app
from detic_cli.cli.evaluate import eval_progress, print_report
from detic_cli.cli.options import batch_size_option, device_option, mirror_option
from detic_cli.engine.cross_eval_job import SUMMARY, TARGETS, cross_evaluate

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def cross_table(summary: dict[str, Any]) -> Table:
    """The zoo's cross-dataset table layout; each benchmark cell reads `measured / published`."""
    table = Table(title="Cross-dataset evaluation", title_justify="left")
    table.add_column("Name", overflow="fold")
    table.add_column("Training time")
    for target in TARGETS:
        table.add_column(f"{target.column}\nmeasured / published", justify="right")
    table.add_column("Download", overflow="fold")
    cells = []
    for target in TARGETS:
        measured = (summary["datasets"].get(target.dataset) or {}).get("measured")
        cells.append(f"{_num(measured)} / {_num(summary['published'].get(target.published))}")
    table.add_row(summary["title"], summary["training_time"] or "-", *cells, summary["url"])
    return table


@app.command("cross-eval")
def cross_eval(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str = typer.Option(..., "--row", "-m", help="Zoo row or checkpoint name (`detic zoo list`)."),
    dataset: list[str] = typer.Option(None, "--dataset", "-d", help="objects365 | oid (repeatable; default both)."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="One eval folder per dataset and "
                                                                            f"{SUMMARY} (default: "
                                                                            "eval/MODEL-cross-dataset)."),
    device: str = device_option(),
    batch_size: int = batch_size_option(),
    fresh: bool = typer.Option(False, "--fresh", help="Drop the shards of an earlier run in --output-dir."),
    mirror: str | None = mirror_option(),
) -> None:
    """The zoo's cross-dataset evaluation of a model: Objects365 box mAP and OpenImages box mAP50."""
    report = cross_evaluate(row=row, datasets=list(dataset or []), output_dir=output_dir, device=device,
                            batch_size=batch_size, fresh=fresh, overrides=list(overrides or []), mirror=mirror,
                            progress=eval_progress(), on_dataset=lambda target, done: print_report(done))
    if report.summary is None:
        return
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(cross_table(report.summary))
    _err.print(f"cross-eval: summary {report.path}", highlight=False)
