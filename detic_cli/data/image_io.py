"""Read images as the original demo does: PIL decode, EXIF orientation applied, BGR uint8; and their size from
the header alone, in the same orientation."""

from __future__ import annotations

from pathlib import Path
from typing import IO

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


_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def oriented_size(source: str | Path | IO[bytes]) -> tuple[int, int]:
    """(height, width) of an image file or seekable binary handle from its header, after EXIF orientation (as
    `read_image_bgr` returns it), without decoding the pixels. PIL's errors (OSError, ValueError, ...) pass."""
    with Image.open(source) as img:
        width, height = img.size
        if img.getexif().get(0x0112) in _TRANSPOSED:
            width, height = height, width
    return height, width
