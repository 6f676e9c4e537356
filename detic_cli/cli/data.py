"""`detic data`: prepare the derived dataset files the original recipes train and evaluate on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar

from detic_cli.cli.app import app
from detic_cli.data.catalog import ENV_VAR, datasets_root
from detic_cli.data.prepare.registry import TARGETS, find_target
from detic_cli.data.prepare.status import PRESENT, SOURCE_MISSING, all_status
from detic_cli.zoo.sources import MIRROR_ENV

data_app = typer.Typer(help="Prepare the datasets the zoo recipes train on, from the public raw files.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

ROOT_HELP = f"Datasets root (default ${ENV_VAR}, else ./datasets)."
_STYLE = {PRESENT: "green", SOURCE_MISSING: "red"}


class CountProgress:
    """Item bars (done/total, elapsed, time left) on stderr when it is a terminal; notes always."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bars = console.is_terminal
        self._bar: RichBar | None = None
        self._task = None

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        self.finish()
        if self._bars:
            self._bar = RichBar(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=self._console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, completed=completed)

    def advance(self, n: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = None

    def note(self, message: str) -> None:
        self._console.print(message, highlight=False, soft_wrap=True)


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
    progress = CountProgress(Console(stderr=True))
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
