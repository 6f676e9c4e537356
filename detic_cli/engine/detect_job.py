"""`detect` as a job: frames from sources, batched through a Predictor, written as they come."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detic_cli.data.image_io import IMAGE_EXTENSIONS
from detic_cli.data.sources import VIDEO_EXTENSIONS, Frame, Source, iter_frames, video_info
from detic_cli.engine.outputs import JsonWriter, VideoOutput, instances_to_record, write_picture
from detic_cli.engine.predictor import Predictor
from detic_cli.engine.prefetch import OrderedWorker, prefetch
from detic_cli.engine.visualize import draw_detections
from detic_cli.errors import DeticError
from detic_cli.structures import Instances


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


def _frames(sources: list[Source], max_frames: int | None,
            on_skip: Callable[[Source, str], None] | None) -> Iterator[Frame]:
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


class DetectJob:
    """Runs `predictor` over `sources`; JSON and pictures/videos are written even if a later input fails.

    `show(picture, still)` displays each annotated BGR picture (`still`: a picture, not a video frame)
    and returns False to stop.
    """

    def __init__(self, predictor: Predictor, sources: list[Source], *, plan: OutputPlan, json_path: Path | None,
                 batch_size: int = 1, max_frames: int | None = None,
                 show: Callable[[np.ndarray, bool], bool] | None = None) -> None:
        self.predictor = predictor
        self.show = show
        self.sources = sources
        self.plan = plan
        self.json = JsonWriter(json_path) if json_path else None
        self.batch_size = max(1, batch_size)
        self.max_frames = max_frames
        self.videos: dict[Source, VideoOutput] = {}
        self.frames_done = 0

    @property
    def writes(self) -> bool:
        """Whether results go anywhere (JSON, pictures or videos)."""
        return self.json is not None or bool(self.plan.targets)

    def _prepared(self, on_skip: Callable[[Source, str], None] | None) -> Iterator[tuple[list[Frame], list[dict]]]:
        for batch in _batches(_frames(self.sources, self.max_frames, on_skip), self.batch_size):
            yield batch, self.predictor.prepare([f.image for f in batch])

    def run(self, on_frame: Callable[[Frame, Instances], None] | None = None,
            on_skip: Callable[[Source, str], None] | None = None) -> None:
        """Frames are read and resized a batch ahead on a thread, so reading overlaps the forward passes;
        results are written on another thread (in this one with `show`, which windows need). Everything
        up to a failing input is written, in input order; `show` returning False stops the job there.
        `on_skip(source, message)` (called on the reading thread) makes unreadable inputs skipped."""
        writer = None if self.show else OrderedWorker(lambda item: self._handle(*item, on_frame))
        failed = False
        try:
            with closing(prefetch(self._prepared(on_skip), depth=2)) as ahead:
                for batch, inputs in ahead:
                    for frame, instances in zip(batch, self.predictor.predict(inputs), strict=True):
                        if writer is not None:
                            writer.submit((frame, instances))
                        elif not self._handle(frame, instances, on_frame):
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
        """Finish every video and the JSON, even when one of them fails (the first error is raised)."""
        errors: list[BaseException] = []
        for video in self.videos.values():
            try:
                video.close(keep=True)
            except Exception as exc:
                errors.append(exc)
        if self.json and (self.json.records or not failed):
            self.json.close()
        if errors:
            raise errors[0]

    def _handle(self, frame: Frame, instances: Instances,
                on_frame: Callable[[Frame, Instances], None] | None) -> bool:
        """Write one result, report it, show it; False when the viewer asked to stop."""
        picture = self._emit(frame, instances)
        if on_frame:
            on_frame(frame, instances)
        if self.show is None:
            return True
        if picture is None:
            picture = draw_detections(frame.image, instances, self.predictor.class_names)
        return self.show(picture, frame.source.kind == "image")

    def _emit(self, frame: Frame, instances: Instances) -> np.ndarray | None:
        """JSON record, picture or video frame of one result; returns the drawn picture if one was made."""
        src, (h, w) = frame.source, frame.image.shape[:2]
        names = self.predictor.class_names
        if self.json:
            index = None if src.kind == "image" else frame.index
            self.json.add(instances_to_record(src.name, h, w, instances, names, index))
        target = self.plan.targets.get(src)
        picture = None
        if target is not None:
            picture = draw_detections(frame.image, instances, names)
            if src.kind == "image":
                write_picture(target, picture)
            else:
                if src not in self.videos:
                    self.videos[src] = VideoOutput(target, video_info(src)[1] if src.kind == "video" else 30.0,
                                                   (w, h))
                self.videos[src].write(picture)
        self.frames_done += 1
        return picture
