"""Inputs of `Detector(source)` and per-class threshold specs, without a model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detic_cli.api.inputs import frames_of, to_bgr
from detic_cli.engine.class_thresholds import parse_class_thresholds
from detic_cli.errors import DeticError


def test_arrays_are_bgr_unless_told_rgb():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB order
    assert to_bgr(rgb, "rgb")[0, 0].tolist() == [0, 0, 200]
    assert to_bgr(rgb, "bgr")[0, 0].tolist() == [200, 0, 0]
    assert to_bgr(np.full((4, 5), 7, np.uint8), "bgr").shape == (4, 5, 3)
    assert to_bgr(np.zeros((4, 5, 4), np.uint8), "bgr").shape == (4, 5, 3)
    for bad in (np.zeros((4, 5, 3), np.float32), np.zeros((4, 5, 2), np.uint8)):
        with pytest.raises(DeticError):
            to_bgr(bad, "bgr")
    with pytest.raises(DeticError, match="channels"):
        to_bgr(rgb, "bgra")


def test_single_picture_versus_many(tmp_path):
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((6, 8, 3), np.uint8))
    frames, single = frames_of(str(tmp_path / "a.png"))
    assert single and [f.source.name for f in frames] == [str(tmp_path / "a.png")]
    frames, single = frames_of(tmp_path)
    assert not single and len(list(frames)) == 2
    frames, single = frames_of([np.zeros((6, 8, 3), np.uint8), str(tmp_path / "b.png")])
    assert not single and [f.image.shape for f in frames] == [(6, 8, 3), (6, 8, 3)]
    assert frames_of(np.zeros((6, 8, 3), np.uint8))[1]
    with pytest.raises(DeticError, match="no such file"):
        frames_of(str(tmp_path / "missing.jpg"))
    with pytest.raises(DeticError, match="cannot detect on a int"):
        list(frames_of(3)[0])


def test_class_threshold_specs(tmp_path):
    spec = parse_class_thresholds("person=0.3, traffic light=0.6", 0.5)
    assert spec.per_class == {"person": 0.3, "traffic light": 0.6} and spec.model_threshold == 0.3
    path = tmp_path / "t.txt"
    path.write_text("# thresholds\nperson=0.7\ndog=0.2, cat=0.9\n")
    assert parse_class_thresholds(str(path), 0.5).per_class == {"person": 0.7, "dog": 0.2, "cat": 0.9}
    assert parse_class_thresholds({"a": 0.1}, 0.4).model_threshold == 0.1
    for bad in ("person", "person=x", "person=1.5", "=0.3"):
        with pytest.raises(DeticError):
            parse_class_thresholds(bad, 0.5)
