"""Where detections go: JSON / JSON Lines records (one per image or video frame), YOLO labels, crops,
annotated pictures and videos. Every writer takes `Result`s: `add(result)`, then `close()`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from pycocotools import mask as mask_util

from detic_cli.utils import atomic_write_bytes

if TYPE_CHECKING:
    from detic_cli.engine.result import Result


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an (H, W) bool mask: {"size": [h, w], "counts": str}."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


class JsonWriter:
    """Collects records (`Result.to_dict`) and writes them atomically as one JSON list (also after a failure)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def add(self, result: Result) -> None:
        self.records.append(result.to_dict())

    def close(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self.records).encode("utf-8"))


class JsonlWriter:
    """JSON Lines, one `Result.to_dict` record per picture or frame, flushed as each is produced so a pipe
    or `tail -f` reads them live. `path` "-" is stdout. A file is written in place (a streaming file cannot
    be renamed into place at the end); every line is written whole, with one write."""

    def __init__(self, path: str | Path) -> None:
        self.records = 0
        if str(path) == "-":
            self.stream, self.owned = sys.stdout, False
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.stream, self.owned = open(path, "w", encoding="utf-8"), True  # noqa: SIM115 (closed in close)

    def add(self, result: Result) -> None:
        self.stream.write(json.dumps(result.to_dict()) + "\n")
        self.stream.flush()
        self.records += 1

    def close(self) -> None:
        if self.owned:
            self.stream.close()


class YoloWriter:
    """`--save-txt`: `folder/<stem>.txt` per picture (`<stem>_NNNNNN.txt` per video frame) with YOLO lines
    (`class_index cx cy w h`, relative), and `folder/classes.txt` (the vocabulary, one name per line)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.vocabulary: list[str] | None = None

    def add(self, result: Result) -> None:
        from detic_cli.engine.formats import result_stem, yolo_lines

        atomic_write_bytes(self.folder / f"{result_stem(result)}.txt", yolo_lines(result).encode("utf-8"))
        self.vocabulary = result.vocabulary

    def close(self) -> None:
        if self.vocabulary is not None:
            atomic_write_bytes(self.folder / "classes.txt", "".join(f"{n}\n" for n in self.vocabulary).encode())


class CropWriter:
    """`--save-crops DIR`: `DIR/<class name>/<stem>_<i>.jpg`, one crop per detection (i: its rank)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, result: Result) -> None:
        from detic_cli.engine.formats import crops, result_stem, safe_name

        stem = result_stem(result)
        for i, (name, crop) in enumerate(crops(result)):
            write_picture(self.folder / safe_name(name) / f"{stem}_{i}.jpg", crop)

    def close(self) -> None:
        return None


def write_picture(path: Path, image_bgr: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix or ".jpg", image_bgr)
    if not ok:
        raise OSError(f"cannot encode {path.suffix} picture")
    atomic_write_bytes(path, data.tobytes())


class VideoOutput:
    """Frames written one by one to a temporary file, renamed into place when the video is complete."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self.writer.isOpened():
            raise OSError(f"cannot open a video writer for {path}")
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        self.writer.write(frame_bgr)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        """Finish the file; `keep` False (or no frame) removes it."""
        self.writer.release()
        if keep and self.frames:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
