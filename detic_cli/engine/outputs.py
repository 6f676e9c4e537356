"""Where detections go: JSON records (one per image or video frame), annotated pictures and videos."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_util

from detic_cli.structures import Instances
from detic_cli.utils import atomic_write_bytes


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an (H, W) bool mask: {"size": [h, w], "counts": str}."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def instances_to_record(file_name: str, height: int, width: int, instances: Instances,
                        class_names: list[str], frame_index: int | None = None) -> dict[str, Any]:
    """The JSON record of one picture (schema of ../shared/README.md; boxes XYXY in original pixels)."""
    boxes = instances.pred_boxes.tensor.tolist()
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    items = []
    for i, (box, score, cls) in enumerate(zip(boxes, scores, classes)):
        item: dict[str, Any] = {"box_xyxy": [float(v) for v in box], "score": float(score), "class_index": int(cls),
                                "class_name": class_names[cls] if cls < len(class_names) else f"class_{cls}"}
        if masks is not None:
            item["mask_rle"] = encode_mask(masks[i])
        items.append(item)
    record: dict[str, Any] = {"file_name": file_name, "height": int(height), "width": int(width)}
    if frame_index is not None:
        record["frame_index"] = frame_index
    record["instances"] = items
    return record


class JsonWriter:
    """Collects records and writes them atomically as one JSON list (also after a failure)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def close(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self.records).encode("utf-8"))


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
