"""The one JSON reader every dataset file goes through: missing or malformed input is one DeticError line."""

from __future__ import annotations

import pytest

from detic_cli.errors import DeticError
from detic_cli.evaluation.groundtruth import load_json
from detic_cli.utils import read_dataset_json, read_json


def test_missing_and_malformed_files_are_one_line(tmp_path):
    with pytest.raises(DeticError, match=r"missing\.json: file not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(DeticError, match=r"bad\.json: not a readable json file") as info:
        read_json(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(DeticError, match="not a readable json file"):
        load_json(bad)  # the evaluator's ground truth, which used to raise json's own error


def test_dataset_json_needs_its_list_fields(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text('{"images": [], "categories": {}}')
    with pytest.raises(DeticError, match="expected a COCO/LVIS json object with 'images', 'categories' lists"):
        read_dataset_json(path)
    assert read_dataset_json(path, keys=("images",)) == {"images": [], "categories": {}}
