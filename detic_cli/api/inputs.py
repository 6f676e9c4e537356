"""What `Detector(source)` accepts, as frames: paths, folders, globs, videos, arrays and PIL images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detic_cli.data.sources import Frame, Source, expand_inputs
from detic_cli.engine.detect_job import source_frames
from detic_cli.errors import DeticError

ARRAY_NAME = "<array>"


def to_bgr(image: np.ndarray, channels: str) -> np.ndarray:
    """A uint8 (H, W, 3) BGR copy of an (H, W), (H, W, 3) or (H, W, 4) uint8 array whose colour channels
    are in `channels` order ("bgr", OpenCV's, or "rgb", PIL's and matplotlib's); alpha is dropped."""
    if channels not in ("bgr", "rgb"):
        raise DeticError(f"channels={channels!r}: expected 'bgr' or 'rgb'")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise DeticError(f"image array: expected uint8, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
        raise DeticError(f"image array: expected (H, W, 3) or (H, W), got shape {tuple(image.shape)}")
    image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1] if channels == "rgb" else image)


def _is_pil(item: Any) -> bool:
    return type(item).__module__.startswith("PIL.") and hasattr(item, "convert")


def _pil_frame(image: Any) -> Frame:
    rgb = np.asarray(image.convert("RGB"))
    name = str(getattr(image, "filename", "") or ARRAY_NAME)
    return Frame(Source("image", name), 0, np.ascontiguousarray(rgb[:, :, ::-1]))


def _item_frames(item: Any, channels: str) -> Iterator[Frame]:
    if isinstance(item, np.ndarray):
        yield Frame(Source("image", ARRAY_NAME), 0, to_bgr(item, channels))
    elif _is_pil(item):
        yield _pil_frame(item)
    elif isinstance(item, (str, Path)):
        yield from source_frames(expand_inputs([str(item)]))
    else:
        raise DeticError(f"cannot detect on a {type(item).__name__}: give a path, folder, glob, video, numpy "
                         "array or PIL image (or a list of them)")


def frames_of(source: Any, channels: str = "bgr") -> tuple[Iterator[Frame], bool]:
    """(frames in input order, single): `single` when `source` is one picture (an array, a PIL image or
    one image file), for which the caller returns one Result instead of an iterator."""
    if isinstance(source, (list, tuple)):
        items = list(source)
        return (f for item in items for f in _item_frames(item, channels)), False
    if isinstance(source, (str, Path)):
        found = expand_inputs([str(source)])
        single = len(found) == 1 and found[0].kind == "image" and Path(source).is_file()
        return source_frames(found), single
    return _item_frames(source, channels), isinstance(source, np.ndarray) or _is_pil(source)
