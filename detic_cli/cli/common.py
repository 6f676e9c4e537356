"""Options and helpers shared by several subcommands."""

from __future__ import annotations

from detic_cli.utils import resolve_device

__all__ = ["resolve_device"]
