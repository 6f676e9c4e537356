"""`detic cross-eval`: a zoo model on Objects365 and OpenImages, printed as the zoo's cross-dataset table.

Each benchmark runs as `detic eval` (resumable shards, results.json and metrics.json in
`--output-dir/<dataset>/`) with the model's cross-dataset settings: the eval overrides of its row in
the zoo's cross-dataset section (where it has one) and the mask head off. `cross_eval.json` sums up the
measured numbers beside the published ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

import detic_cli.cli.evaluate  # noqa: F401  (registers `eval`, which runs each benchmark)
from detic_cli.cli.app import app
from detic_cli.data.catalog import resolve_dataset
from detic_cli.engine.cross_eval_job import (
    SUMMARY,
    TARGETS,
    CrossTarget,
    eval_overrides,
    select_targets,
    target_summary,
    write_summary,
)
from detic_cli.engine.evaluate_job import DistInfo
from detic_cli.zoo.catalog import ZooRow, rows_for
from detic_cli.zoo.resolve import find_row, resolve_model

_err = Console(stderr=True, markup=False)  # messages carry paths and user text verbatim


def cross_row(row: ZooRow) -> ZooRow | None:
    """The row of the same checkpoint in the zoo's cross-dataset section (its settings and published numbers)."""
    return next((r for r in rows_for(row.stem) if r.section == "cross-dataset"), None)


def _run_eval(args: list[str]) -> None:
    """`detic eval ARGS...` in this process, exactly as typed on the command line."""
    from typer.main import get_command

    get_command(app).main(args=["eval", *args], prog_name="detic", standalone_mode=False)


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


def build_summary(row: ZooRow, config: Path, weights: Path, words: list[str], out: Path,
                  targets: list[CrossTarget]) -> dict[str, Any]:
    """cross_eval.json: the row, its files and settings, its published numbers and each benchmark's entry."""
    metrics = row.metrics.as_dict()
    published = {t.published: metrics.get(t.published) for t in TARGETS}
    return {"row": row.name, "title": row.title, "checkpoint": row.stem, "training_time": row.training_time,
            "url": row.weights.url, "config": str(config), "weights": str(weights), "overrides": words,
            "published": published,
            "datasets": {t.dataset: target_summary(t, out / t.dataset, published[t.published]) for t in targets}}


@app.command("cross-eval")
def cross_eval(
    overrides: list[str] = typer.Argument(None, help="KEY.PATH=VALUE config overrides."),
    row: str = typer.Option(..., "--row", "-m", help="Zoo row or checkpoint name (`detic zoo list`)."),
    dataset: list[str] = typer.Option(None, "--dataset", "-d", help="objects365 | oid (repeatable; default both)."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="One eval folder per dataset and "
                                                                            f"{SUMMARY} (default: "
                                                                            "eval/MODEL-cross-dataset)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]"),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Images per forward pass."),
    fresh: bool = typer.Option(False, "--fresh", help="Drop the shards of an earlier run in --output-dir."),
    mirror: str | None = typer.Option(None, "--mirror", help="Base URL or folder standing in for public hosts."),
) -> None:
    """The zoo's cross-dataset evaluation of a model: Objects365 box mAP and OpenImages box mAP50."""
    targets = select_targets(dataset)
    for target in targets:  # a missing dataset says which files go where, before anything is downloaded
        resolve_dataset(target.dataset)
    found = find_row(row)
    shown = cross_row(found) or found
    config, weights = resolve_model(row, mirror=mirror)
    words = eval_overrides(shown.eval_overrides if shown.section == "cross-dataset" else (), list(overrides or []))
    out = output_dir or Path("eval") / f"{found.stem}-cross-dataset"
    dist = DistInfo.from_env()
    for target in targets:
        folder = out / target.dataset
        if dist.is_main:  # metrics.json of an earlier run must not pass for this one's
            (folder / "metrics.json").unlink(missing_ok=True)
        _run_eval(["--config", str(config), "--weights", str(weights), "--dataset", target.dataset, "--vocab",
                   target.vocab, "--output-dir", str(folder), "--device", device, "--batch-size", str(batch_size),
                   *(["--fresh"] if fresh else []), *(["--mirror", mirror] if mirror else []), *words])
    if not dist.is_main:
        return
    summary = build_summary(shown, config, weights, words, out, targets)
    write_summary(out / SUMMARY, summary)
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(cross_table(summary))
    _err.print(f"cross-eval: summary {out / SUMMARY}", highlight=False)
