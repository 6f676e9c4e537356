"""`detect` as a job: frames from sources, batched through a Predictor, written as they come."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from detic_cli.data.image_io import IMAGE_EXTENSIONS
from detic_cli.data.sources import VIDEO_EXTENSIONS, Frame, Source, iter_frames, video_info
from detic_cli.engine.class_thresholds import ClassThresholds
from detic_cli.engine.outputs import JsonWriter, VideoOutput, write_picture
from detic_cli.engine.predictor import Predictor
from detic_cli.engine.prefetch import OrderedWorker, prefetch
from detic_cli.engine.result import Result
from detic_cli.engine.tracking import TrackSettings, track_frames
from detic_cli.errors import DeticError
from detic_cli.structures import Instances


class Sink(Protocol):
    """A writer of Results (engine/outputs.py): `add` each in order, then `close` once."""

    def add(self, result: Result) -> None: ...

    def close(self) -> None: ...


@dataclass
class OutputPlan:
    """Where each source's annotated result goes (None: not written)."""

    targets: dict[Source, Path] = field(default_factory=dict)

    @staticmethod
    def make(sources: list[Source], output: Path | None) -> OutputPlan:
        """A file for one picture or video whose suffix fits it, else one file per input in the folder
        `output`. A name with a suffix that fits no single input, or a target that is an input, is an error."""
        plan = OutputPlan()
        if output is None:
            return plan
        suffix = output.suffix.lower()
        if len(sources) == 1 and ((sources[0].kind == "image" and suffix in IMAGE_EXTENSIONS)
                                  or (sources[0].kind != "image" and suffix in VIDEO_EXTENSIONS)):
            plan.targets[sources[0]] = output
        elif suffix and not output.is_dir():
            raise DeticError(f"--output {output}: a file name fits one picture ({', '.join(IMAGE_EXTENSIONS)}) or "
                             f"one video ({', '.join(VIDEO_EXTENSIONS)}); give a folder name for these inputs")
        else:
            plan.targets.update(_folder_targets(sources, output))
        inputs = {Path(src.location).resolve() for src in sources if src.kind != "webcam"}
        for target in plan.targets.values():
            if target.resolve() in inputs:
                raise DeticError(f"--output {output}: would overwrite the input {target}; choose another folder")
        return plan


def _folder_targets(sources: list[Source], folder: Path) -> dict[Source, Path]:
    targets: dict[Source, Path] = {}
    used: set[str] = set()
    for src in sources:
        name = Path(src.location).name if src.kind == "image" else f"{Path(src.name).stem}.mp4"
        stem, ext, n = Path(name).stem, Path(name).suffix, 1
        while name in used:
            name, n = f"{stem}_{n}{ext}", n + 1
        used.add(name)
        targets[src] = folder / name
    return targets


def count_frames(sources: list[Source], max_frames: int | None,
                 on_skip: Callable[[Source, str], None] | None = None) -> int | None:
    """Total frames to process, or None when a source has no known length (webcam). Every video and
    camera is opened once here, so one that cannot be opened fails before any work; with `on_skip`
    it is reported there instead and not counted."""
    total: int | None = 0
    for src in sources:
        try:
            count = 1 if src.kind == "image" else video_info(src)[0]
        except DeticError as exc:
            if on_skip is None:
                raise
            on_skip(src, str(exc))
            continue
        if src.kind != "image" and max_frames:
            count = min(count, max_frames) if count > 0 else max_frames
        if count <= 0:
            total = None
        elif total is not None:
            total += count
    return total


def source_frames(sources: list[Source], max_frames: int | None = None,
                  on_skip: Callable[[Source, str], None] | None = None) -> Iterator[Frame]:
    """Every source's frames in order; with `on_skip`, a source that fails is reported and passed over
    (a video keeps the frames before the failure), otherwise its DeticError propagates."""
    for src in sources:
        try:
            yield from iter_frames(src, max_frames)
        except DeticError as exc:
            if on_skip is None:
                raise
            on_skip(src, str(exc))


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Frames in lists of `size`; when reading fails, the frames read before it still come out first."""
    batch: list[Frame] = []
    try:
        for frame in frames:
            batch.append(frame)
            if len(batch) == size:
                yield batch
                batch = []
    except DeticError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def frame_result(predictor: Predictor, frame: Frame, instances: Instances,
                 thresholds: ClassThresholds | None = None) -> Result:
    """The Result of one frame (its picture kept for drawing and crops), per-class thresholds applied."""
    result = Result.from_instances(instances, vocabulary=predictor.class_names, source=frame.source.name,
                                   frame_index=None if frame.source.kind == "image" else frame.index,
                                   image=frame.image, scorer=getattr(predictor, "scorer", None))
    return thresholds.apply(result) if thresholds is not None else result


def stream_results(predictor: Predictor, frames: Iterator[Frame], *, batch_size: int = 1,
                   thresholds: ClassThresholds | None = None) -> Iterator[tuple[Frame, Result]]:
    """(frame, Result) for every frame, in order, as they are computed: frames are read and resized a batch
    ahead on a thread, so reading overlaps the forward passes (`detect` and the Python API both run this).
    A reading failure is raised after the results of every frame read before it."""
    def prepared() -> Iterator[tuple[list[Frame], list[dict]]]:
        for batch in _batches(frames, max(1, batch_size)):
            yield batch, predictor.prepare([f.image for f in batch])

    with closing(prefetch(prepared(), depth=2)) as ahead:
        for batch, inputs in ahead:
            for frame, instances in zip(batch, predictor.predict(inputs), strict=True):
                yield frame, frame_result(predictor, frame, instances, thresholds)


class DetectJob:
    """Runs `predictor` over `sources`; JSON and pictures/videos are written even if a later input fails.

    `show(picture, still)` displays each annotated BGR picture (`still`: a picture, not a video frame)
    and returns False to stop. `track`: follow objects across each video's frames (Result.track_ids).
    """

    def __init__(self, predictor: Predictor, sources: list[Source], *, plan: OutputPlan, json_path: Path | None,
                 batch_size: int = 1, max_frames: int | None = None,
                 show: Callable[[np.ndarray, bool], bool] | None = None, sinks: list[Sink] | None = None,
                 thresholds: ClassThresholds | None = None, track: TrackSettings | None = None) -> None:
        self.predictor = predictor
        self.track = track
        self.show = show
        self.sources = sources
        self.plan = plan
        self.json = JsonWriter(json_path) if json_path else None
        self.sinks: list[Sink] = ([self.json] if self.json else []) + list(sinks or [])
        self.batch_size = max(1, batch_size)
        self.max_frames = max_frames
        self.thresholds = thresholds
        self.videos: dict[Source, VideoOutput] = {}
        self.frames_done = 0

    @property
    def writes(self) -> bool:
        """Whether results go anywhere (JSON, JSON Lines, labels, crops, pictures or videos)."""
        return bool(self.sinks) or bool(self.plan.targets)

    def run(self, on_frame: Callable[[Frame, Result], None] | None = None,
            on_skip: Callable[[Source, str], None] | None = None) -> None:
        """Frames are read and resized a batch ahead on a thread, so reading overlaps the forward passes;
        results are written on another thread (in this one with `show`, which windows need). Everything
        up to a failing input is written, in input order; `show` returning False stops the job there.
        `on_skip(source, message)` (called on the reading thread) makes unreadable inputs skipped."""
        writer = None if self.show else OrderedWorker(lambda item: self._handle(*item, on_frame))
        failed = False
        frames = source_frames(self.sources, self.max_frames, on_skip)
        try:
            results = stream_results(self.predictor, frames, batch_size=self.batch_size, thresholds=self.thresholds)
            for frame, result in results if self.track is None else track_frames(results, self.track):
                if writer is not None:
                    writer.submit((frame, result))
                elif not self._handle(frame, result, on_frame):
                    return
            if writer is not None:
                writer.close()
        except BaseException:
            failed = True
            raise
        finally:
            try:
                if writer is not None:
                    writer.close()
            finally:
                self._close_outputs(failed)

    def _close_outputs(self, failed: bool) -> None:
        """Finish every video and sink, even when one of them fails (the first error is raised). The JSON
        list is written after a failure only when it holds records."""
        errors: list[BaseException] = []
        closers = [v.close for v in self.videos.values()]
        closers += [s.close for s in self.sinks if s is not self.json or self.json.records or not failed]
        for close in closers:
            try:
                close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _handle(self, frame: Frame, result: Result, on_frame: Callable[[Frame, Result], None] | None) -> bool:
        """Write one result, report it, show it; False when the viewer asked to stop."""
        picture = self._emit(frame, result)
        if on_frame:
            on_frame(frame, result)
        if self.show is None:
            return True
        return self.show(result.plot() if picture is None else picture, frame.source.kind == "image")

    def _emit(self, frame: Frame, result: Result) -> np.ndarray | None:
        """Records, labels, crops, picture or video frame of one result; returns the drawn picture if made."""
        for sink in self.sinks:
            sink.add(result)
        src, (h, w) = frame.source, frame.image.shape[:2]
        target = self.plan.targets.get(src)
        picture = None
        if target is not None:
            picture = result.plot()
            if src.kind == "image":
                write_picture(target, picture)
            else:
                if src not in self.videos:
                    self.videos[src] = VideoOutput(target, video_info(src)[1] if src.kind == "video" else 30.0,
                                                   (w, h))
                self.videos[src].write(picture)
        self.frames_done += 1
        return picture
