"""The one exception type that the command line turns into a single clear line and exit code 1."""

from __future__ import annotations


class DeticError(Exception):
    """A problem with the user's input or environment; the message says what to do."""


def brief(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message (its type when empty), cut at a word and marked when long."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:(`'\"") + " ..."
