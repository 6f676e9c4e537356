"""Options and helpers shared by several subcommands: device, model files, vocabulary, progress bars."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from detic_cli.engine.model_setup import inference_amp, model_files, resolve_classifier
from detic_cli.errors import DeticError
from detic_cli.utils import resolve_device

__all__ = ["AMP_HELP", "check_writable", "inference_amp", "model_files", "progress_bar", "resolve_classifier",
           "resolve_device"]


def progress_bar(label: str, console: Console, disable: bool = False) -> Progress:
    """A bar with done/total, elapsed time and ETA on `console` (stderr)."""
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    return Progress(*columns, console=console, disable=disable)


AMP_HELP = ("off | fp16 | bf16: run the backbone in half precision (faster on GPUs, fp16 slow on CPUs); "
            "detections differ slightly from the original's float32")


def check_writable(path: Path, flag: str, *, folder: bool = False) -> None:
    """Fail before any work when `path` (a file, or a folder with `folder`) cannot be written."""
    if path.exists() and path.is_dir() != folder:
        raise DeticError(f"{flag} {path}: is a {'file' if folder else 'folder'}; give a "
                         f"{'folder' if folder else 'file name'}")
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DeticError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DeticError(f"{flag} {path}: no permission to write in {ancestor}")
