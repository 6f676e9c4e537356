"""Progress reporting for downloads: a rich bar on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
from typing import Protocol


class Progress(Protocol):
    """What the downloader tells its caller: a file started (total bytes or None when unknown,
    bytes already present from an earlier attempt), bytes arrived, the file ended, a remark."""

    def start(self, label: str, total: int | None, completed: int = 0) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...

    def note(self, message: str) -> None: ...


class NullProgress:
    """Reports nothing (tests, pipes, logs)."""

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class RichProgress:
    """A transfer bar (size, speed, time left) on stderr, one per file."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._bar = None
        self._task = None

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        from rich import progress as rp

        self.finish()
        self._bar = rp.Progress(
            rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
            rp.TransferSpeedColumn(), rp.TimeRemainingColumn(), console=self._console, transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, completed=completed)

    def advance(self, nbytes: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = None

    def note(self, message: str) -> None:
        self._console.print(message, highlight=False)


def default_progress() -> Progress:
    """A rich bar when stderr is a terminal, else nothing."""
    return RichProgress() if sys.stderr.isatty() else NullProgress()
