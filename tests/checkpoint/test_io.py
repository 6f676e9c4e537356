"""checkpoint.io: one reader unwraps every container a released file comes in; one writer, atomic."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from detic_cli.checkpoint.io import read_state_dict, write_checkpoint
from detic_cli.errors import DeticError

SD = {"conv1.weight": torch.arange(6.0).reshape(2, 3), "bn1.running_var": torch.ones(2)}


@pytest.mark.parametrize("wrap", [None, "model", "state_dict", "model_state", "module"])
def test_every_torch_container_unwraps_to_the_same_tensors(tmp_path, wrap):
    path = tmp_path / "w.pth"
    torch.save(SD if wrap is None else {wrap: SD, "epoch": 3}, path)
    got = read_state_dict(path)
    assert list(got) == list(SD) and all(torch.equal(got[k], SD[k]) for k in SD)


def test_dataparallel_prefix_and_momentum_blobs_are_dropped(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": {f"module.{k}": v for k, v in SD.items()} | {"conv1_w_momentum": torch.zeros(1)}}, path)
    assert list(read_state_dict(path)) == list(SD)


@pytest.mark.parametrize("suffix", [".pkl", ".pickle"])
def test_legacy_pickles_of_either_suffix_read_through_the_restricted_unpickler(tmp_path, suffix):
    path = tmp_path / f"R-50{suffix}"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": np.ones((2, 3), np.float32)}}, protocol=2))
    assert read_state_dict(path)["conv1_w"].shape == (2, 3)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_written_checkpoints_read_back(tmp_path, suffix):
    dst = tmp_path / "sub" / f"out{suffix}"
    write_checkpoint(dict(SD), dst)
    got = read_state_dict(dst)
    assert all(torch.equal(got[k], SD[k]) for k in SD)
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temp file left behind


def test_an_unknown_output_suffix_and_an_empty_state_are_one_line(tmp_path):
    with pytest.raises(DeticError, match="must end in .pth or .safetensors"):
        write_checkpoint(dict(SD), tmp_path / "out.bin")
    torch.save({"model": {"note": "no tensors"}}, tmp_path / "empty.pth")
    with pytest.raises(DeticError, match="no tensors found"):
        read_state_dict(tmp_path / "empty.pth")
