"""Helpers shared by several subcommands: output checks; model files, vocabulary, devices and the progress bar
are re-exported from where they live (engine/model_setup, detic_cli.progress; options: cli/options.py)."""

from __future__ import annotations

import os
from pathlib import Path

from detic_cli.cli.options import AMP_HELP
from detic_cli.engine.model_setup import inference_amp, model_files, resolve_classifier
from detic_cli.errors import DeticError
from detic_cli.progress import progress_bar
from detic_cli.utils import resolve_device

__all__ = ["AMP_HELP", "check_writable", "inference_amp", "model_files", "progress_bar", "resolve_classifier",
           "resolve_device"]


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
