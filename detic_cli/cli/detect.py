"""`detic detect`: run a detector on images, folders, globs, videos or a webcam."""

from __future__ import annotations

from detic_cli.cli.app import app


@app.command("detect")
def detect() -> None:
    """Detect objects (engine under construction)."""
