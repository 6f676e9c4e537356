"""Read and atomically write the (large) COCO/LVIS-format json files of dataset preparation.

Writers stream the encoded text into a temporary file beside the destination and rename it into
place only when complete, so a reader never sees half a file and an interrupted run leaves the
previous file (or none). Text is what `json.dump` writes by default (ASCII, ", " and ": ").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from detic_cli.utils import atomic_path, read_dataset_json, read_json

__all__ = ["read_dataset_json", "read_json", "write_json", "dataset_json_writer"]

_ENCODER = json.JSONEncoder()
_BUFFER = 1 << 20




@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """A text handle on a temporary file that becomes `path` (mode 0644) when the block ends
    without an exception; on an exception the temporary file is removed."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", buffering=_BUFFER) as handle:
        yield handle


def write_json(path: Path, obj: Any) -> Path:
    """`obj` encoded as json into `path`, atomically, without building the whole text in memory."""
    with atomic_text(path) as handle:
        for chunk in _ENCODER.iterencode(obj):
            handle.write(chunk)
    return path


class ImageListWriter:
    """Appends image records to the open "images" list of a json being written; `tail` holds the
    fields written after the list (set them before the `with` block ends)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.count = 0
        self.tail: dict[str, Any] = {}

    def add(self, record: dict[str, Any]) -> None:
        self._handle.write(", " if self.count else "")
        _dump(self._handle, record)
        self.count += 1


@contextmanager
def dataset_json_writer(path: Path, head: dict[str, Any] | None = None) -> Iterator[ImageListWriter]:
    """Streams `{**head, "images": [...], **writer.tail}` into `path`, renamed into place when the
    block ends without an exception (for image lists too long to hold in memory)."""
    with atomic_text(path) as handle:
        handle.write("{")
        for key, value in (head or {}).items():
            handle.write(f"{_ENCODER.encode(key)}: ")
            _dump(handle, value)
            handle.write(", ")
        handle.write('"images": [')
        writer = ImageListWriter(handle)
        yield writer
        handle.write("]")
        for key, value in writer.tail.items():
            handle.write(f", {_ENCODER.encode(key)}: ")
            _dump(handle, value)
        handle.write("}")


def _dump(handle: IO[str], value: Any) -> None:
    for chunk in _ENCODER.iterencode(value):
        handle.write(chunk)
