"""Refusals: a pickle that would run code, truncated files, unknown layouts, shape mismatches."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from detic_cli.checkpoint.convert import Conversion, convert_state_dict, detect_kind, fit_to_model
from detic_cli.checkpoint.io import read_state_dict
from detic_cli.checkpoint.legacy_pickle import read_legacy_pickle
from detic_cli.errors import DeticError


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_code_running_pickle_is_refused_and_never_runs(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    obj = {"blobs": {"conv1_w": np.zeros(3, np.float32), "x": _Exploit(str(marker))}}
    if suffix == ".pth":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DeticError) as exc:
        read_state_dict(path)
    assert "refused to load" in _one_line(exc) and not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"a": np.array([{"k": 1}], dtype=object)}}))
    with pytest.raises(DeticError, match="array of Python objects"):
        read_legacy_pickle(path)


@pytest.mark.parametrize("suffix", [".pkl", ".pth", ".safetensors"])
def test_truncated_files_are_refused(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps({"blobs": {k: v.numpy() for k, v in sd.items()}}, protocol=2))
    elif suffix == ".pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DeticError) as exc:
        read_state_dict(path)
    assert "truncated or corrupt" in _one_line(exc) or "not a readable" in _one_line(exc)


@pytest.mark.parametrize("content", [b"", b"junk\n", b"\x80\x02}q\x00."[:3]])
@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_empty_or_junk_files_are_one_line(tmp_path, suffix, content):
    """A half-failed download or a wrong file: never a traceback (IndexError/KeyError), one line naming it."""
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(DeticError) as exc:
        read_state_dict(path)
    assert str(path) in _one_line(exc) and ("not a readable" in _one_line(exc) or "refused" in _one_line(exc))


def test_long_reader_messages_are_cut_at_a_word():
    from detic_cli.errors import brief

    text = brief(RuntimeError("word " * 60 + "\nsecond line"))
    assert text.endswith(" ...") and len(text) <= 124 and "second" not in text
    assert brief(EOFError()) == "EOFError"


def test_latin1_python2_style_pickle_reads(tmp_path):
    path = tmp_path / "R-50.pkl"
    blobs = {"conv1_w": np.ones((2, 3), np.float32), "lr": np.float32(0.1)}
    path.write_bytes(pickle.dumps({"blobs": blobs, "__author__": "Caffe2"}, protocol=2))
    sd = read_state_dict(path)
    assert list(sd) == ["conv1_w"] and sd["conv1_w"].shape == (2, 3)


def test_unknown_layout_and_bad_kind():
    with pytest.raises(DeticError, match="--kind"):
        detect_kind({"foo.weight": torch.zeros(1)})
    with pytest.raises(DeticError, match="--kind"):
        convert_state_dict({"conv1.weight": torch.zeros(1)}, "vgg")


def test_detection_of_each_layout():
    z = torch.zeros(1)
    assert detect_kind({"backbone.bottom_up.base.conv1.weight": z}) == "detector"
    assert detect_kind({"res2_0_branch2a_w": z}) == "msra-pkl"
    assert detect_kind({"downsample_layers.0.0.weight": z}) == "convnext"
    assert detect_kind({"layer1.0.conv1.weight": z, "fc.weight": torch.zeros(1000, 1)}) == "torchvision-resnet"
    assert detect_kind({"layer1.0.conv1.weight": z, "fc.weight": torch.zeros(11221, 1)}) == "timm-resnet"
    assert detect_kind({"layer1.0.conv1.weight": z}, {"backbone.bottom_up.base.layer1.0.conv1.weight"}) == \
        "timm-resnet"


def test_fit_places_res5_in_the_c4_head_and_fails_on_shapes():
    conv = Conversion("torchvision-resnet", {"backbone.res5.0.conv1.weight": torch.zeros(2, 2),
                                             "backbone.res4.0.conv1.weight": torch.zeros(2)})
    model = {"roi_heads.res5.0.conv1.weight": torch.zeros(2, 2), "backbone.res4.0.conv1.weight": torch.zeros(2),
             "roi_heads.cls.weight": torch.zeros(1), "backbone.res4.0.conv1.norm.num_batches_tracked": torch.zeros(1)}
    fitted = fit_to_model(conv, model)
    assert set(fitted.state) == {"roi_heads.res5.0.conv1.weight", "backbone.res4.0.conv1.weight"}
    assert fitted.random_init == ["roi_heads.cls.weight"]
    with pytest.raises(DeticError, match="shape mismatch"):
        fit_to_model(conv, {**model, "backbone.res4.0.conv1.weight": torch.zeros(3)})
