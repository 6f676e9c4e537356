"""detic_cli.progress: the one progress helper (byte and item bars, notes, silence off a terminal)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from detic_cli.progress import BarProgress, NullProgress, bar_columns, default_progress, progress_bar


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, color_system=None), out


def _run(progress) -> None:
    progress.start("file.pth", 10, completed=2)
    progress.advance(8)
    progress.note("a remark")
    progress.finish()


@pytest.mark.parametrize(("unit", "terminal", "drawn"), [("items", False, False), ("items", True, True),
                                                         ("bytes", False, True)])
def test_bars_where_someone_watches_and_notes_always(unit, terminal, drawn):
    console, out = _console(terminal)
    _run(BarProgress(console, unit=unit))
    text = out.getvalue()
    assert "a remark" in text and ("10/10" in text if unit == "items" else "file.pth" in text) == drawn


def test_item_bars_with_own_fields_and_the_silent_reporter(capsys):
    console, out = _console(True)
    with progress_bar("train", console, fields=("loss {task.fields[loss]}",)) as bar:
        bar.add_task("train", total=2, completed=2, loss="0.25")
    assert "2/2 loss 0.25" in out.getvalue()
    assert len(bar_columns("x")) == 5 and len(bar_columns("x", "bytes")) == 5
    with pytest.raises(ValueError, match="unit"):
        bar_columns("x", "frames")
    _run(NullProgress())
    assert isinstance(default_progress(), NullProgress)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_item_bars_can_show_a_rate():
    import time

    console, out = _console(True)
    with progress_bar("label", console, rate="images") as bar:
        task = bar.add_task("label", total=3)
        for _ in range(3):
            time.sleep(0.02)
            bar.advance(task)
    assert "3/3" in out.getvalue() and "images/s" in out.getvalue()
    assert len(bar_columns("x", rate="images")) == 6
