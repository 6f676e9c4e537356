"""Video tracking: stable identities for a video's detections across frames, by ByteTrack from the
`trackers` package (Roboflow's tracker library; `pip install "detic[track]"`).

`VideoTracker` owns one ByteTrack per video stream (`reset` at each new video, `update` per frame, in
frame order); `track_frames` runs it over a `(Frame, Result)` stream, `detect --track` and `label --track`
alike. ByteTrack is class-agnostic: a box keeps its identity when its best class changes between frames.
Every detection is kept: ByteTrack gives -1 to a detection that is not (yet) a confirmed track (a new
object's first `min_frames - 1` frames, at least its first; a low-score detection that continues no
track; one below `activation_thresh`), and a confirmed track's id (>= 0, counted from 0 per video).
`result.select(result.track_ids >= 0)` keeps only the tracked ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detic_cli.data.sources import Frame, Source, video_info
from detic_cli.engine.formats import supervision_detections
from detic_cli.engine.result import Result
from detic_cli.errors import DeticError

__all__ = ["INSTALL_HINT", "TrackSettings", "VideoTracker", "check_installed", "track_frames"]

INSTALL_HINT = 'tracking needs the trackers package: pip install "detic[track]"'
_ROW = "detic_row"  # supervision data key carrying each detection's row through the tracker


@dataclass(frozen=True)
class TrackSettings:
    """ByteTrack's parameters, by the names of `detic detect --track-*`.

    buffer: frames (at 30 fps, scaled to the video's rate) a lost track is kept to be found again
        (ByteTrack `lost_track_buffer`), >= 0.
    thresh: score in [0, 1] splitting high-score detections (matched first, may start tracks) from
        low-score ones (only continue tracks left unmatched) (`high_conf_det_threshold`). Detections
        below `detect --threshold` never reach the tracker: lower it under `thresh` to use the low stage.
    activation_thresh: score in [0, 1] an unmatched detection needs to start a new track
        (`track_activation_threshold`); None: `thresh`.
    match_thresh: the IoU in [0, 1] a detection needs with a track's predicted box to continue it
        (`minimum_iou_threshold`).
    min_frames: consecutive frames before a new track gets its id (`minimum_consecutive_frames`), >= 1.
    frame_rate: the videos' frames per second (`frame_rate`); None: each video's own (30 for a webcam).
    """

    buffer: int = 30
    thresh: float = 0.5
    activation_thresh: float | None = None
    match_thresh: float = 0.1
    min_frames: int = 2
    frame_rate: float | None = None

    def __post_init__(self) -> None:
        if self.buffer < 0:
            raise DeticError(f"track buffer {self.buffer}: expected a number of frames >= 0")
        if self.min_frames < 1:
            raise DeticError(f"track min_frames {self.min_frames}: expected >= 1")
        for name in ("thresh", "activation_thresh", "match_thresh"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise DeticError(f"track {name} {value}: expected a value in [0, 1]")
        if self.frame_rate is not None and not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise DeticError(f"track frame_rate {self.frame_rate}: expected frames per second > 0")


def _bytetrack_class() -> Any:
    try:
        from trackers import ByteTrackTracker
    except ImportError:
        raise DeticError(INSTALL_HINT) from None
    return ByteTrackTracker


def check_installed() -> None:
    """Raise the one-line DeticError naming `pip install "detic[track]"` when `trackers` is missing (the
    commands call it before loading a model)."""
    _bytetrack_class()


def _bytetrack(settings: TrackSettings, frame_rate: float) -> Any:
    """A fresh `trackers.ByteTrackTracker` with `settings` (a one-line DeticError when not installed)."""
    activation = settings.thresh if settings.activation_thresh is None else settings.activation_thresh
    return _bytetrack_class()(lost_track_buffer=settings.buffer, frame_rate=frame_rate,
                               track_activation_threshold=activation,
                               minimum_consecutive_frames=settings.min_frames,
                               minimum_iou_threshold=settings.match_thresh,
                               high_conf_det_threshold=settings.thresh)


class VideoTracker:
    """One ByteTrack over one video stream at a time: `reset` before each video, then `update` every
    frame's Result in frame order (an empty Result too: it ages the tracks)."""

    def __init__(self, settings: TrackSettings | None = None) -> None:
        self.settings = settings or TrackSettings()
        self._tracker = _bytetrack(self.settings, self.settings.frame_rate or 30.0)

    def reset(self, frame_rate: float | None = None) -> None:
        """Forget every track and restart ids at 0, for a new video of `frame_rate` fps (settings.frame_rate,
        when given, wins; else 30)."""
        rate = self.settings.frame_rate or frame_rate or 30.0
        self._tracker = _bytetrack(self.settings, rate if math.isfinite(rate) and rate > 0 else 30.0)

    def update(self, result: Result) -> Result:
        """`result` (the next frame) with `track_ids` (N,) int64 set, its detections in their own order."""
        light = replace(result, masks=None, stage_embeddings=None, proposal_scores=None, track_ids=None)
        detections = supervision_detections(light)
        detections.data[_ROW] = np.arange(len(result))
        tracked = self._tracker.update(detections)
        ids = np.full(len(result), -1, dtype=np.int64)
        if len(tracked):
            ids[np.asarray(tracked.data[_ROW], dtype=np.int64)] = np.asarray(tracked.tracker_id, dtype=np.int64)
        return replace(result, track_ids=ids)


def _frame_rate(source: Source) -> float:
    """A video's fps (30 when unknown, and for a webcam, which is not opened a second time)."""
    return video_info(source)[1] if source.kind == "video" else 30.0


def track_frames(pairs: Iterable[tuple[Frame, Result]],
                 settings: TrackSettings | None = None) -> Iterator[tuple[Frame, Result]]:
    """`pairs` in order with every video or webcam frame's Result tracked (one tracker, reset when the
    source changes or its frame numbers restart); pictures pass through untracked (track_ids None)."""
    tracker = VideoTracker(settings)
    current: tuple[Source, int] | None = None
    for frame, result in pairs:
        if frame.source.kind == "image":
            yield frame, result
            continue
        if current is None or current[0] != frame.source or frame.index <= current[1]:
            tracker.reset(_frame_rate(frame.source))
        current = (frame.source, frame.index)
        yield frame, tracker.update(result)
