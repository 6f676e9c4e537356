"""The default probe picture of the export check: deterministic, with plenty of edges and shapes."""

from __future__ import annotations

import cv2
import numpy as np


def probe_picture(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A BGR uint8 picture: a colour gradient with filled rectangles, circles and lines of random colours
    (fixed `seed`), so the dense head and every cascade stage see structure (use --probe for a photo)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs / width * 255, ys / height * 255, (xs + ys) / (width + height) * 255], axis=2)
    image = np.ascontiguousarray(image.astype(np.uint8))
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        x1, y1 = x0 + int(rng.integers(30, width // 2)), y0 + int(rng.integers(30, height // 2))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
        elif kind == 1:
            cv2.circle(image, ((x0 + x1) // 2, (y0 + y1) // 2), max(10, (x1 - x0) // 3), colour, -1)
        else:
            cv2.line(image, (x0, y0), (x1, y1), colour, 5)
    return image
