"""The `detic` executable: one typer app, one small module per subcommand."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from detic_cli import __version__
from detic_cli.errors import DeticError

app = typer.Typer(
    name="detic",
    help="Detic open-vocabulary detection: detect any named object, run the model zoo, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"detic {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Detic open-vocabulary detection."""


def _register() -> None:
    # Each subcommand module adds itself to `app` when imported.
    from detic_cli.cli import build_vocab, convert, cross_eval, data, detect, evaluate, export, label, serve, train, zoo  # noqa: F401


def _quiet_opencv() -> None:
    """OpenCV and FFmpeg print their own warnings for unreadable videos and cameras; detect reports those in
    one line, so their logs are off unless the user sets these variables."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def main() -> None:
    _quiet_opencv()
    _register()
    err = Console(stderr=True)
    try:
        app(standalone_mode=True)
    except DeticError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a file system refusal met mid-way (disk full, permissions): one line too
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"[bold red]error:[/] {escape(str(exc.strerror or exc))}{escape(where)}", highlight=False,
                  soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
