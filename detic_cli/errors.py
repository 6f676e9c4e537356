"""The one exception type that the command line turns into a single clear line and exit code 1."""

from __future__ import annotations


class DeticError(Exception):
    """A problem with the user's input or environment; the message says what to do."""
