"""`detic label` as a job: inputs (pictures, sampled video frames) -> labelled detections -> one shard each.

Under `torchrun` (WORLD_SIZE > 1) each rank takes the inputs `rank::world_size` of the sorted list, so the
ranks share the work without talking; a rerun skips every input that already has a shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from detic_cli.data.sources import Frame, Source, expand_inputs, iter_frames, video_info
from detic_cli.engine.class_thresholds import ClassThresholds
from detic_cli.engine.detect_job import stream_results
from detic_cli.engine.dist import DistInfo
from detic_cli.engine.label_store import LabelStore, shard_record
from detic_cli.engine.ontology import Ontology
from detic_cli.engine.outputs import write_picture
from detic_cli.engine.predictor import Predictor
from detic_cli.engine.result import Result
from detic_cli.engine.tracking import TrackSettings, VideoTracker
from detic_cli.errors import DeticError

LIST_SUFFIXES = (".txt",)

__all__ = ["LabelFilters", "LabelItem", "LabelJob", "expand_label_sources", "plan_items"]


@dataclass(frozen=True)
class LabelItem:
    """One input: a picture (frame None) or frame `frame` of a video; `key` is its resolved path (`#frame` for a
    frame), what the split hashes; `error`: why it cannot be read (found while planning, with --skip-bad)."""

    key: str
    source: Source
    frame: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class LabelFilters:
    """After the ontology: detections under `min_box_area` pixels^2 are dropped, then all but the
    `max_detections` best (None: all); `merge_iou` is the per-class NMS IoU that merges prompts."""

    min_box_area: float = 0.0
    max_detections: int | None = None
    merge_iou: float = 0.5


def expand_label_sources(words: list[str]) -> list[Source]:
    """Pictures, folders, globs, videos, and text files listing such paths (one a line, `#` comments, relative
    to the list's folder). A webcam has no end, so it is refused."""
    sources: list[Source] = []
    for word in words:
        path = Path(word)
        if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
            listed = [str(p if Path(p).is_absolute() else path.parent / p) for p in lines if p]
            if not listed:
                raise DeticError(f"{word}: the list names no picture or video")
            sources.extend(expand_inputs(listed))
        else:
            sources.extend(expand_inputs([word]))
    if webcams := [s for s in sources if s.kind == "webcam"]:
        raise DeticError(f"{webcams[0].location}: label takes pictures and videos, not a webcam (record a video "
                         "and label that)")
    return sources


def plan_items(sources: list[Source], every: int = 1, skip_bad: bool = False) -> list[LabelItem]:
    """Every picture and every `every`-th frame of each video, once each, sorted by (path, frame). A video that
    cannot be opened is an error, or with `skip_bad` one item that will be reported as skipped."""
    if every < 1:
        raise DeticError(f"--every {every}: must be at least 1")
    items: dict[str, LabelItem] = {}
    for src in sources:
        resolved = Path(src.location).resolve().as_posix()
        if src.kind == "image":
            items[resolved] = LabelItem(resolved, src)
            continue
        try:
            count = video_info(src)[0]
            if count <= 0:
                raise DeticError(f"{src.name}: the video does not say how many frames it has; re-encode it")
        except DeticError as exc:
            if not skip_bad:
                raise
            items[resolved] = LabelItem(resolved, src, None, str(exc))
            continue
        items.update((f"{resolved}#{i}", LabelItem(f"{resolved}#{i}", src, i)) for i in range(0, count, every))
    return sorted(items.values(), key=lambda it: (it.key.split("#")[0], -1 if it.frame is None else it.frame))


@dataclass
class LabelJob:
    """Labels this rank's inputs that have no shard yet (at most `max_images` of them)."""

    predictor: Predictor
    items: list[LabelItem]
    store: LabelStore
    ontology: Ontology
    thresholds: ClassThresholds
    filters: LabelFilters = field(default_factory=LabelFilters)
    dist: DistInfo = field(default_factory=DistInfo)
    batch_size: int = 1
    max_images: int | None = None
    skip_bad: bool = False
    frame_ext: str = "jpg"
    track: TrackSettings | None = None
    every: int = 1
    images_done: int = 0

    def _units(self) -> list[list[LabelItem]]:
        """What a rank takes whole: one input, or with tracking all the sampled frames of one video."""
        if self.track is None:
            return [[it] for it in self.items]
        units: dict[Source, list[LabelItem]] = {}
        for item in self.items:
            units.setdefault(item.source, []).append(item)
        return list(units.values())

    def pending(self) -> list[LabelItem]:
        """This rank's inputs without a shard (with tracking: every frame of a video not wholly done, since its
        track ids run from its first frame), at most `max_images`."""
        mine = self._units()[self.dist.rank::self.dist.world_size]
        todo = [it for unit in mine if not all(self.store.done(i.key) for i in unit) for it in unit
                if self.track is not None or not self.store.done(it.key)]
        return todo if self.max_images is None else todo[:self.max_images]

    def label(self, result: Result) -> Result:
        """The detections of the prompts as the dataset's classes, thresholded and filtered."""
        out = self.ontology.apply(result, self.filters.merge_iou)
        if len(out):  # every class's own threshold (the model cut at the lowest one)
            limits = [self.thresholds.per_class.get(n, self.thresholds.base) for n in out.class_names]
            out = out.select(out.scores > np.asarray(limits, np.float32))
        if self.filters.min_box_area > 0 and len(out):
            wh = out.boxes[:, 2:] - out.boxes[:, :2]
            out = out.select(wh[:, 0] * wh[:, 1] >= self.filters.min_box_area)
        if self.filters.max_detections is not None and len(out) > self.filters.max_detections:
            out = out.select(np.sort(np.argsort(-out.scores, kind="stable")[:self.filters.max_detections]))
        return out

    def run(self, on_item: Callable[[LabelItem, Result | None], None] | None = None) -> None:
        """Label the pending inputs in order; `on_item(item, result)` after each (result None: skipped as bad)."""
        report = on_item or (lambda item, result: None)
        todo = self.pending()
        by_frame = {(it.source, it.frame): it for it in todo}
        frames = self._frames(todo, report)
        tracker = VideoTracker(self.track) if self.track is not None else None
        current: Source | None = None
        for frame, result in stream_results(self.predictor, frames, batch_size=self.batch_size):
            item = by_frame[(frame.source, None if frame.source.kind == "image" else frame.index)]
            labelled = self.label(result)
            if tracker is not None and frame.source.kind == "video":
                if frame.source != current:  # a new video: ids from 0, at the rate of its sampled frames
                    tracker.reset(video_info(frame.source)[1] / self.every)
                    current = frame.source
                labelled = tracker.update(labelled)
            self._write(item, frame, labelled)
            self.images_done += 1
            report(item, labelled)

    def _write(self, item: LabelItem, frame: Frame, result: Result) -> None:
        file = Path(item.key)
        if item.frame is not None:
            file = self.store.frame_path(item.key, self.frame_ext)
            write_picture(file, frame.image)
        self.store.write({**shard_record(item.key, file, replace(result, image=None)), "rank": self.dist.rank})

    def _bad(self, item: LabelItem, message: str, report: Callable[[LabelItem, Result | None], None]) -> None:
        """With --skip-bad, remember `item` as unreadable (it counts as done); otherwise stop on it."""
        if not self.skip_bad:
            raise DeticError(message)
        self.store.write({"key": item.key, "file_name": item.source.name, "bad": message})
        report(item, None)

    def _frames(self, todo: list[LabelItem], report: Callable[[LabelItem, Result | None], None]) -> Iterator[Frame]:
        """The frames of the pending inputs, each source opened once; unreadable ones go to `_bad`."""
        groups: dict[Source, list[LabelItem]] = {}
        for item in todo:
            groups.setdefault(item.source, []).append(item)
        for src, items in groups.items():
            if items[0].error is not None:
                self._bad(items[0], items[0].error, report)
                continue
            wanted = {it.frame if src.kind != "image" else 0: it for it in items}
            last = max(wanted)
            try:
                for frame in iter_frames(src, last + 1 if src.kind != "image" else None):
                    if wanted.pop(frame.index, None) is not None:
                        yield frame
            except DeticError as exc:
                for item in list(wanted.values()):
                    self._bad(item, str(exc), report)
                continue
            for item in wanted.values():
                self._bad(item, f"{src.name}: frame {item.frame} could not be decoded", report)
