"""Helpers shared by several subcommands: checks on output paths before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from detic_cli.errors import DeticError


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
