"""Read images as the original demo does: PIL decode, EXIF orientation applied, BGR uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detic_cli.errors import DeticError, brief

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image_bgr(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 BGR pixels of an image file; unreadable or truncated files are a DeticError."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = np.asarray(img.convert("RGB"))
    except FileNotFoundError as exc:
        raise DeticError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DeticError(f"{path}: cannot read image ({brief(exc)}); "
                         "is it a complete JPEG/PNG file?") from exc
    return np.ascontiguousarray(rgb[:, :, ::-1])
