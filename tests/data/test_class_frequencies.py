"""The class-frequency file read for the federated loss, IGNORE_ZERO_CATS and the dynamic classifier."""

from __future__ import annotations

import json

import pytest
import torch

from detic_cli.data.class_frequencies import class_image_counts, read_class_image_counts
from detic_cli.errors import DeticError


def test_counts_are_ordered_by_id_and_bad_files_are_one_line(tmp_path):
    path = tmp_path / "cat_info.json"
    path.write_text(json.dumps([{"id": 3, "image_count": 9}, {"id": 1, "image_count": 4},
                                {"id": 2, "image_count": 0, "name": "x"}]))
    assert torch.equal(read_class_image_counts(path), torch.tensor([4.0, 0.0, 9.0]))
    assert torch.equal(read_class_image_counts(str(path)), torch.tensor([4.0, 0.0, 9.0]))
    with pytest.raises(DeticError, match=r"missing\.json.*detic data prepare lvis-norare"):
        read_class_image_counts(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('[{"id": 1}]')
    with pytest.raises(DeticError, match="bad.json"):
        read_class_image_counts(tmp_path / "bad.json")


def test_config_paths_resolve_under_detic_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("DETIC_DATASETS", str(tmp_path))
    with pytest.raises(DeticError, match=r"metadata/cat_info\.json not found"):
        class_image_counts("datasets/metadata/cat_info.json")
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata/cat_info.json").write_text(json.dumps([{"id": 1, "image_count": 2}]))
    assert class_image_counts("datasets/metadata/cat_info.json").tolist() == [2.0]
    assert class_image_counts("") is None
