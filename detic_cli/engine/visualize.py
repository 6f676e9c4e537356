"""Draw detections on a BGR picture: translucent masks, boxes and `name #track score` labels."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def class_color(index: int) -> tuple[int, int, int]:
    """A stable, well separated BGR colour per class index (golden-ratio hues)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(image_bgr: np.ndarray, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                    masks: np.ndarray | None, class_names: list[str], *,
                    track_ids: np.ndarray | None = None) -> np.ndarray:
    """A copy of `image_bgr` (H, W, 3 uint8) with every detection drawn, best score on top.

    boxes (N, 4) XYXY pixels; scores (N,) in [0, 1]; class_ids (N,) into `class_names`; masks (N, H, W)
    bool or None; track_ids (N,) int or None: a track id >= 0 is drawn as `#ID` after the class name.
    """
    canvas = image_bgr.copy()
    order = np.argsort(scores, kind="stable").tolist() if len(scores) else []
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for i in order:
        cls = int(class_ids[i])
        color = class_color(cls)
        if masks is not None:
            region = masks[i]
            canvas[region] = (0.5 * canvas[region] + 0.5 * np.array(color)).astype(np.uint8)
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thickness)
        name = class_names[cls] if cls < len(class_names) else f"class_{cls}"
        track = f" #{int(track_ids[i])}" if track_ids is not None and track_ids[i] >= 0 else ""
        label = f"{name}{track} {float(scores[i]):.0%}"
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
        cv2.putText(canvas, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return canvas
