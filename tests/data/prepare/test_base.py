"""The steps every `detic data prepare` target shares: reading a COCO/LVIS annotation file with a note."""

from __future__ import annotations

import json

import pytest

from detic_cli.data.prepare.base import NullProgress, Target, read_annotations
from detic_cli.errors import DeticError

TARGET = Target(name="demo", summary="", inputs=(), outputs=(), source_hint="")


class _Notes(NullProgress):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_read_annotations_notes_the_file_and_checks_the_three_lists(tmp_path):
    good = tmp_path / "train.json"
    good.write_text(json.dumps({"images": [{"id": 1}], "categories": [], "annotations": []}))
    progress = _Notes()
    assert read_annotations(TARGET, good, progress)["images"] == [{"id": 1}]
    assert progress.notes == [f"demo: reading {good}"]
    (tmp_path / "no_anns.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DeticError, match="'annotations' lists"):
        read_annotations(TARGET, tmp_path / "no_anns.json", progress)
