"""A Result in the ecosystem's formats: COCO results, supervision, YOLO labels, crops, files by suffix."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from detic_cli.data.image_io import IMAGE_EXTENSIONS
from detic_cli.engine.outputs import encode_mask, write_picture
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_write_bytes

if TYPE_CHECKING:
    from detic_cli.engine.result import Result


def coco_results(result: Result, image_id: int,
                 category_ids: Sequence[int] | Mapping[int, int] | None = None) -> list[dict[str, Any]]:
    """One COCO result per detection: image_id, category_id (category_ids[class index], default index + 1),
    bbox [x, y, w, h] in pixels, score, and `segmentation` (RLE: size [h, w], counts str) with masks."""
    out = []
    for i in range(len(result)):
        cls = int(result.class_ids[i])
        try:
            category = int(category_ids[cls]) if category_ids is not None else cls + 1
        except (KeyError, IndexError):
            raise DeticError(f"category_ids has no id for class {cls} ({result.class_names[i]})") from None
        x1, y1, x2, y2 = (float(v) for v in result.boxes[i])
        item: dict[str, Any] = {"image_id": image_id, "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "score": float(result.scores[i])}
        if result.masks is not None:
            item["segmentation"] = encode_mask(result.masks[i])
        out.append(item)
    return out


def supervision_detections(result: Result) -> Any:
    """`supervision.Detections` of a Result; supervision is optional (`pip install supervision`)."""
    try:
        import supervision as sv
    except ImportError:
        raise DeticError("to_supervision needs the supervision package: pip install supervision") from None
    data: dict[str, Any] = {"class_name": np.array(result.class_names, dtype=str)}
    if result.embeddings is not None:
        data["embedding"] = result.embeddings
    return sv.Detections(xyxy=result.boxes.astype(np.float32).reshape(-1, 4), mask=result.masks,
                         confidence=result.scores.astype(np.float32), class_id=result.class_ids.astype(int),
                         tracker_id=None if result.track_ids is None else result.track_ids.astype(int), data=data)


def yolo_lines(result: Result, polygons: bool = False) -> str:
    """YOLO labels: one `class_index cx cy w h` line per detection, coordinates divided by the image size.
    With `polygons` and masks (the YOLO segmentation format): `class_index x0 y0 x1 y1 ...`, the largest outer
    contour of each mask (the box's corners for an empty mask)."""
    h, w = result.image_size
    lines = []
    for i, (cls, (x1, y1, x2, y2)) in enumerate(zip(result.class_ids, result.boxes.astype(np.float64))):
        if polygons and result.masks is not None:
            found = mask_polygons(result.masks[i])
            points = found[0] if found else [x1, y1, x2, y1, x2, y2, x1, y2]
            scale = np.tile([w, h], len(points) // 2)
            lines.append(f"{int(cls)} " + " ".join(f"{v:.6f}" for v in np.asarray(points) / scale))
            continue
        lines.append(f"{int(cls)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
                     f"{(y2 - y1) / h:.6f}")
    return "".join(line + "\n" for line in lines)


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """The outer contours of an (H, W) bool mask as COCO polygons [x0, y0, x1, y1, ...] (pixel indices),
    largest area first; contours of fewer than 3 points are left out."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    kept = sorted((c for c in contours if len(c) >= 3), key=cv2.contourArea, reverse=True)
    return [[float(v) for v in c.reshape(-1)] for c in kept]


MASK_STYLES = ("polygon", "rle", "none")


def coco_annotations(result: Result, image_id: int, first_id: int, masks: str = "polygon",
                     category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """COCO dataset annotations (ids first_id, first_id + 1, ...): category_id (category_ids[class index],
    default index + 1), bbox [x, y, w, h] pixels, area, iscrowd 0, score, and with masks a `segmentation`
    by `masks`: "polygon" (outer contours; RLE where the mask is empty), "rle" (size, counts str) or "none";
    `track_id` (video track identity, -1 when not a confirmed track) when the Result is tracked."""
    if masks not in MASK_STYLES:
        raise DeticError(f"--masks {masks}: expected one of {', '.join(MASK_STYLES)}")
    out = []
    for i, item in enumerate(coco_results(result, image_id, category_ids)):
        x, y, bw, bh = item["bbox"]
        ann = {"id": first_id + i, **item, "area": bw * bh, "iscrowd": 0}
        ann.pop("segmentation", None)
        if result.masks is not None and masks != "none":
            ann["area"] = float(result.masks[i].sum())
            polygons = mask_polygons(result.masks[i]) if masks == "polygon" else []
            ann["segmentation"] = polygons or item["segmentation"]
        if result.track_ids is not None:
            ann["track_id"] = int(result.track_ids[i])
        out.append(ann)
    return out


def result_stem(result: Result) -> str:
    """A file stem per picture or video frame: the source's stem, `_NNNNNN` for a frame."""
    stem = Path(result.source).stem or "image"
    return stem if result.frame_index is None else f"{stem}_{result.frame_index:06d}"


def safe_name(name: str) -> str:
    """A class name usable as one folder name (path separators and control characters replaced)."""
    cleaned = re.sub(r"[/\\\x00-\x1f:*?\"<>|]", "_", name).strip(" .")
    return cleaned or "_"


def crops(result: Result) -> list[tuple[str, np.ndarray]]:
    """(class name, BGR crop) per detection: its box, rounded outward to whole pixels, clipped to the image."""
    if result.image is None:
        raise DeticError("this Result has no image to crop (it was made without one)")
    h, w = result.image_size
    out = []
    for name, (x1, y1, x2, y2) in zip(result.class_names, result.boxes):
        left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        right, bottom = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if right > left and bottom > top:
            out.append((name, result.image[top:bottom, left:right]))
    return out


def npz_bytes(result: Result) -> bytes:
    """The arrays of a Result as .npz: boxes, scores, class_ids, class_names, vocabulary, image_size,
    masks (if any), track_ids (if tracked), embeddings / stage_embeddings / proposal_scores and scorer (JSON)
    with embeddings."""
    arrays: dict[str, Any] = {"boxes": result.boxes, "scores": result.scores, "class_ids": result.class_ids,
                              "class_names": np.array(result.class_names, dtype=str),
                              "vocabulary": np.array(result.vocabulary, dtype=str),
                              "image_size": np.array(result.image_size, dtype=np.int64)}
    if result.masks is not None:
        arrays["masks"] = result.masks
    if result.track_ids is not None:
        arrays["track_ids"] = result.track_ids
    if result.stage_embeddings is not None:
        arrays.update(embeddings=result.embeddings, stage_embeddings=result.stage_embeddings,
                      proposal_scores=result.proposal_scores)
        if result.scorer is not None:
            arrays["scorer"] = np.array(json.dumps(result.scorer.__dict__))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_result(result: Result, path: Path) -> Path:
    """Write `result` by the suffix of `path` (.json, .npz, .txt, or a picture), atomically."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        atomic_write_bytes(path, json.dumps(result.to_dict()).encode("utf-8"))
    elif suffix == ".npz":
        atomic_write_bytes(path, npz_bytes(result))
    elif suffix == ".txt":
        atomic_write_bytes(path, yolo_lines(result).encode("utf-8"))
    elif suffix in IMAGE_EXTENSIONS:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_picture(path, result.plot())
    else:
        raise DeticError(f"save {path}: unknown suffix; use .json, .npz, .txt or a picture "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return path
