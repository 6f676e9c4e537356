"""Progress reporting, one helper for every command: rich bars on stderr, silence where nobody watches.

Two shapes of bar: `bytes` (size, speed, time left: downloads) and `items` (done/total, elapsed, time
left: detection, evaluation, dataset preparation). Long-running code reports through the `Progress`
protocol (a task started, advanced, ended, a remark) and never touches rich itself; a command picks
`BarProgress`, `NullProgress` or `default_progress()`. Loops that drive a rich bar directly (one task,
updated in place) take `progress_bar(label, console)`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichBar
    from rich.progress import ProgressColumn, TaskID

UNITS = ("bytes", "items")


class Progress(Protocol):
    """What long-running code tells its caller: a task started (total size or count, None when unknown;
    what is already done, e.g. bytes kept from an earlier attempt), some more done, the task ended, a remark."""

    def start(self, label: str, total: int | None, completed: int = 0) -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...

    def note(self, message: str) -> None: ...


class NullProgress:
    """Reports nothing (tests, pipes, logs)."""

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def bar_columns(label: str, unit: str = "items", fields: tuple[str, ...] = (),
                rate: str | None = None) -> list[ProgressColumn]:
    """The columns of one bar: `items` (bold label, done/total, elapsed, ETA) or `bytes` (the task's
    description, size, speed, ETA). fields: text templates (`"loss {task.fields[loss]}"`) shown after an
    items bar's done/total instead of its time columns, for loops that report their own figures. rate: the
    items' name ("images"): an items bar also shows their speed (`2.50 images/s`)."""
    from rich import progress as rp

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "bytes":
        return [rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(), rp.TransferSpeedColumn(),
                rp.TimeRemainingColumn()]
    head = [rp.TextColumn(f"[bold]{label}"), rp.BarColumn(), rp.MofNCompleteColumn()]
    if rate:
        head.append(_rate_column(rate))
    if fields:
        return [*head, *(rp.TextColumn(f) for f in fields)]
    return [*head, rp.TimeElapsedColumn(), rp.TimeRemainingColumn()]


def _rate_column(name: str) -> ProgressColumn:
    """`N.NN <name>/s`: the task's speed (blank until rich has measured one)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text("" if task.speed is None else f"{task.speed:.2f} {name}/s")

    return RateColumn()


def progress_bar(label: str, console: Console, disable: bool = False, unit: str = "items",
                 fields: tuple[str, ...] = (), rate: str | None = None) -> RichBar:
    """A rich bar (a context manager; add one task and advance it) on `console`; see `bar_columns`."""
    from rich.progress import Progress as RichBar

    return RichBar(*bar_columns(label, unit, fields, rate), console=console, disable=disable)


class BarProgress:
    """A `Progress` drawing one rich bar per task on `console` (default stderr). bars: draw them (default:
    always for bytes, only on a terminal for items); rate: an items bar's speed, see `bar_columns`; notes are
    printed either way."""

    def __init__(self, console: Console | None = None, *, unit: str = "bytes", bars: bool | None = None,
                 rate: str | None = None) -> None:
        from rich.console import Console

        self._console = console or Console(stderr=True)
        self._unit = unit
        self._rate = rate
        self._bars = bars if bars is not None else unit == "bytes" or self._console.is_terminal
        self._bar: RichBar | None = None
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None, completed: int = 0) -> None:
        self.finish()
        if self._bars:
            self._bar = progress_bar(label, self._console, unit=self._unit, rate=self._rate)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, completed=completed)

    def advance(self, amount: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, amount)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = None

    def note(self, message: str) -> None:
        self._console.print(message, highlight=False, soft_wrap=True)


def default_progress() -> Progress:
    """Byte bars on stderr when it is a terminal, else nothing."""
    return BarProgress() if sys.stderr.isatty() else NullProgress()
