"""Inputs of `detect`: image files, folders, globs, video files and webcam indices, as frames."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detic_cli.data.image_io import IMAGE_EXTENSIONS, read_image_bgr
from detic_cli.errors import DeticError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Source:
    """One input: kind is "image", "video" or "webcam"; `location` is a path or a camera index."""

    kind: str
    location: str

    @property
    def name(self) -> str:
        return f"webcam{self.location}" if self.kind == "webcam" else self.location


@dataclass(frozen=True)
class Frame:
    """A decoded BGR uint8 (H, W, 3) picture and where it came from (`index` is the video frame number)."""

    source: Source
    index: int
    image: np.ndarray


def _kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in VIDEO_EXTENSIONS else None


def expand_inputs(inputs: list[str]) -> list[Source]:
    """Resolve every input word to sources, in a stable order; a word matching nothing is an error."""
    sources: list[Source] = []
    for word in inputs:
        if word.isdigit() and not Path(word).exists():
            sources.append(Source("webcam", word))
            continue
        path = Path(word)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _kind_of(p))
            if not found:
                raise DeticError(f"{word}: folder has no image or video files")
            sources.extend(Source(_kind_of(p) or "image", str(p)) for p in found)
        elif path.is_file():
            sources.append(Source(_kind_of(path) or "image", word))
        elif glob.has_magic(word):
            matches = sorted(Path(m) for m in glob.glob(word, recursive=True) if Path(m).is_file())
            if not matches:
                raise DeticError(f"{word}: pattern matches no files")
            sources.extend(Source(_kind_of(p) or "image", str(p)) for p in matches)
        else:
            raise DeticError(f"{word}: no such file, folder or pattern")
    return sources


def open_video(source: Source) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(int(source.location) if source.kind == "webcam" else source.location)
    if not cap.isOpened():
        what = "camera" if source.kind == "webcam" else "video"
        raise DeticError(f"{source.name}: cannot open {what}; check the path or device index")
    return cap


def video_info(source: Source) -> tuple[int, float, tuple[int, int]]:
    """(frame count (0 if unknown), fps, (width, height)) of a video or camera."""
    cap = open_video(source)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if source.kind == "video" else 0
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()
    return max(count, 0), float(fps if fps > 0 else 30.0), size


def iter_frames(source: Source, max_frames: int | None = None) -> Iterator[Frame]:
    """Decoded frames of one source; a video that stops decoding before its frame count is an error."""
    if source.kind == "image":
        yield Frame(source, 0, read_image_bgr(source.location))
        return
    expected = video_info(source)[0]
    cap = open_video(source)
    try:
        index = 0
        while max_frames is None or index < max_frames:
            ok, image = cap.read()
            if not ok or image is None:
                if source.kind == "video" and index < expected - 1:
                    raise DeticError(f"{source.name}: frame {index} of {expected} could not be decoded; "
                                     "the video is corrupt or truncated")
                return
            yield Frame(source, index, image)
            index += 1
    finally:
        cap.release()
