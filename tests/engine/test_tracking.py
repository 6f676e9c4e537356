"""Video tracking (ByteTrack through the `trackers` package) on a synthetic video of moving shapes: the
shapes are found in the decoded frames by colour, and their boxes (with a little jitter) are tracked."""

from __future__ import annotations

import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from detic_cli.data.sources import Frame, Source, iter_frames
from detic_cli.engine.result import Result
from detic_cli.engine.tracking import INSTALL_HINT, TrackSettings, VideoTracker, track_frames
from detic_cli.errors import DeticError

COLORS = {"square": (0, 0, 255), "disc": (255, 0, 0), "bar": (0, 255, 0)}  # BGR
NAMES = list(COLORS)
SIZE = (128, 96)  # width, height


def _draw(frame: int, hide_disc: range = range(0)) -> np.ndarray:
    """Frame `frame`: a square moving right, a disc moving down (hidden in `hide_disc`) and, from frame
    8, a bar entering from the right edge."""
    image = np.full((SIZE[1], SIZE[0], 3), 30, np.uint8)
    x = 5 + 3 * frame
    cv2.rectangle(image, (x, 10), (x + 18, 28), COLORS["square"], -1)
    if frame not in hide_disc:
        cv2.circle(image, (80, 20 + 2 * frame), 9, COLORS["disc"], -1)
    if frame >= 8:
        x = SIZE[0] - 4 * (frame - 7)
        cv2.rectangle(image, (x, 60), (x + 25, 75), COLORS["bar"], -1)
    return image


def _write_video(path, frames: int = 20, hide_disc: range = range(0)) -> Source:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_draw(i, hide_disc))
    writer.release()
    return Source("video", str(path))


def _shapes(frame: Frame, rng: np.random.Generator) -> Result:
    """The Result a perfect detector would give: each shape's box (found by colour) jittered by ~1 px."""
    boxes, classes = [], []
    for cls, color in enumerate(COLORS.values()):
        near = np.abs(frame.image.astype(np.int32) - np.array(color)).sum(axis=2) < 150
        if near.sum() < 20:
            continue
        ys, xs = np.nonzero(near)
        boxes.append(np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) + rng.uniform(-1, 1, 4))
        classes.append(cls)
    n = len(boxes)
    return Result(boxes=np.array(boxes, np.float32).reshape(-1, 4), scores=np.full(n, 0.9, np.float32),
                  class_ids=np.array(classes, np.int64), class_names=[NAMES[c] for c in classes], masks=None,
                  image_size=frame.image.shape[:2], source=frame.source.name, frame_index=frame.index,
                  vocabulary=NAMES, image=frame.image)


def _tracks(sources: list[Source], settings: TrackSettings | None = None) -> list[dict[str, int]]:
    """Per frame of every source, in order: {shape name: track id}."""
    rng = np.random.default_rng(0)
    pairs = ((f, _shapes(f, rng)) for src in sources for f in iter_frames(src))
    return [{n: int(t) for n, t in zip(r.class_names, r.track_ids)} for _, r in track_frames(pairs, settings)]


def test_ids_are_stable_and_an_entering_object_gets_a_new_one(tmp_path):
    frames = _tracks([_write_video(tmp_path / "shapes.avi")])
    assert len(frames) == 20
    assert frames[0] == {"square": -1, "disc": -1}  # a track gets its id on its second frame
    square, disc = frames[1]["square"], frames[1]["disc"]
    assert square >= 0 and disc >= 0 and square != disc
    assert all(f["square"] == square and f["disc"] == disc for f in frames[1:])
    assert "bar" not in frames[7] and frames[8]["bar"] == -1
    bar = frames[9]["bar"]
    assert bar not in (-1, square, disc)
    assert all(f["bar"] == bar for f in frames[9:])


def test_a_briefly_hidden_object_keeps_its_id_within_the_buffer(tmp_path):
    source = _write_video(tmp_path / "hide.avi", frames=14, hide_disc=range(5, 7))
    frames = _tracks([source])
    assert "disc" not in frames[5] and "disc" not in frames[6]
    assert frames[7]["disc"] == frames[4]["disc"] >= 0
    lost = _tracks([source], TrackSettings(buffer=0))  # --track-buffer 0: a lost track ends at once
    assert lost[7]["disc"] == -1 and lost[8]["disc"] not in (-1, lost[4]["disc"], lost[8]["square"])


def test_ids_restart_per_video_and_pictures_pass_untracked(tmp_path):
    video = _write_video(tmp_path / "a.avi", frames=3)
    picture = Frame(Source("image", "p.jpg"), 0, _draw(0))
    rng = np.random.default_rng(0)
    pairs = [(f, _shapes(f, rng)) for f in iter_frames(video)] + [(picture, _shapes(picture, rng))]
    pairs += [(f, _shapes(f, rng)) for f in iter_frames(video)]  # the same video again: a new stream
    out = [r for _, r in track_frames(pairs)]
    assert out[3].track_ids is None and out[3].to_dict()["instances"][0].keys().isdisjoint({"track_id"})
    assert list(out[1].track_ids) == list(out[5].track_ids) and sorted(out[1].track_ids) == [0, 1]
    assert list(out[4].track_ids) == [-1, -1]


def test_track_ids_reach_records_selection_drawing_and_supervision():
    frame = Frame(Source("video", "v.avi"), 0, _draw(3))
    result = _shapes(frame, np.random.default_rng(0))
    tracked = VideoTracker().update(result)
    assert tracked.track_ids.dtype == np.int64 and list(tracked.track_ids) == [-1, -1]
    tracked = replace(tracked, track_ids=np.array([4, 7], np.int64))
    assert [i["track_id"] for i in tracked.to_dict()["instances"]] == [4, 7]
    assert list(tracked.select([1]).track_ids) == [7]
    assert not np.array_equal(tracked.plot(), result.plot())  # "#4" / "#7" drawn after the names
    assert list(tracked.to_supervision().tracker_id) == [4, 7]


def test_bad_settings_and_a_missing_package_are_one_line_errors(monkeypatch):
    with pytest.raises(DeticError, match="buffer -1"):
        TrackSettings(buffer=-1)
    with pytest.raises(DeticError, match=r"match_thresh 1.5.*\[0, 1\]"):
        TrackSettings(match_thresh=1.5)
    monkeypatch.setitem(sys.modules, "trackers", None)
    with pytest.raises(DeticError) as info:
        VideoTracker()
    assert str(info.value) == INSTALL_HINT and 'pip install "detic[track]"' in INSTALL_HINT
