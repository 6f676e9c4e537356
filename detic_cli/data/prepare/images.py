"""Image sizes from file headers (no pixel decode), for the height/width fields of dataset records."""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from detic_cli.data.image_io import oriented_size

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
_GZIP_MAGIC = b"\x1f\x8b"


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def header_size(handle: IO[bytes]) -> tuple[int, int] | None:
    """(height, width) after EXIF orientation of the image in a seekable binary `handle`, or None
    when it is not a readable image. Gzip-wrapped files (a few ImageNet-21K members) are unwrapped."""
    start = handle.read(2)
    handle.seek(0)
    if start == _GZIP_MAGIC:
        try:
            handle = io.BytesIO(gzip.GzipFile(fileobj=handle).read())
        except (OSError, EOFError):
            return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return oriented_size(handle)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def file_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image file, or None when missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            return header_size(handle)
    except OSError:
        return None
