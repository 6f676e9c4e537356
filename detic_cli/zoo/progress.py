"""Former home of the download progress reporters, kept as an import path: they live in `detic_cli.progress`
(`RichProgress` is its byte bar, `BarProgress()`). `data/prepare/base.py` still imports from here."""

from __future__ import annotations

from detic_cli.progress import BarProgress as RichProgress
from detic_cli.progress import NullProgress, Progress, default_progress

__all__ = ["NullProgress", "Progress", "RichProgress", "default_progress"]
