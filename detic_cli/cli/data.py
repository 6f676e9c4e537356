"""`detic data`: prepare the derived dataset files the original recipes train and evaluate on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from detic_cli.cli.app import app
from detic_cli.data.catalog import ENV_VAR, datasets_root
from detic_cli.data.prepare.registry import TARGETS, find_target
from detic_cli.data.prepare.status import PRESENT, SOURCE_MISSING, all_status
from detic_cli.progress import BarProgress
from detic_cli.zoo.sources import MIRROR_ENV

data_app = typer.Typer(help="Prepare the datasets the zoo recipes train on, from the public raw files.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

ROOT_HELP = f"Datasets root (default ${ENV_VAR}, else ./datasets)."
_STYLE = {PRESENT: "green", SOURCE_MISSING: "red"}


@contextmanager
def _mirror(mirror: str | None) -> Iterator[None]:
    """$DETIC_ZOO_MIRROR set to `mirror` (when given) while the target's metadata files are fetched."""
    if mirror is None:
        yield
        return
    before = os.environ.get(MIRROR_ENV)
    os.environ[MIRROR_ENV] = mirror
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MIRROR_ENV, None)
        else:
            os.environ[MIRROR_ENV] = before


@data_app.command("prepare")
def prepare(
    target: str = typer.Argument(..., help=f"What to make: {', '.join(TARGETS)}."),
    root: Path | None = typer.Option(None, "--root", help=ROOT_HELP),
    force: bool = typer.Option(False, "--force", help="Remake the files even when they exist."),
    mirror: str | None = typer.Option(None, "--mirror", help=f"Base URL, folder or hf://OWNER/REPO standing in for "
                                                            f"the public hosts of the metadata files (${MIRROR_ENV})."),
) -> None:
    """Make one target's files from the raw dataset files under the datasets root (skipped when done)."""
    entry = find_target(target)
    base = datasets_root(root)
    progress = BarProgress(Console(stderr=True), unit="items")
    try:
        with _mirror(mirror):
            paths = entry.prepare(base, force=force, progress=progress)
    finally:
        progress.finish()
    for path in paths:
        typer.echo(str(path))


@data_app.command("status")
def status(root: Path | None = typer.Option(None, "--root", help=ROOT_HELP)) -> None:
    """Each target: present, missing (with the command that makes it) or source missing (what to download)."""
    base = datasets_root(root)
    console = Console() if sys.stdout.isatty() else Console(width=400)
    console.print(f"datasets under {base}:", highlight=False)
    for item in all_status(base, root_flag=root):
        state = f"[{_STYLE.get(item.state, 'yellow')}]{item.state:<14}[/]"
        console.print(f"  {item.name:<18} {state} {item.detail}", highlight=False, soft_wrap=True)
