"""What a detection request may carry: upload size, image format and pixel count, threshold, classes.

Every check fails with one `ServeError` (4xx) before any work is queued. The pixel count is read from
the image header, before any pixel is decoded, so a small file that claims a huge picture (a
decompression bomb) is refused without allocating it."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from detic_cli.data.image_io import read_image_bgr
from detic_cli.errors import DeticError
from detic_cli.serve.errors import ServeError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")  # what PIL may open; nothing else is identified
RAW_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "application/octet-stream")
MASK_MODES = ("rle", "none")


@dataclass(frozen=True)
class Limits:
    """max_upload_bytes: the image file; max_pixels: width x height; max_classes: names in one request
    vocabulary; min_threshold: the score cut the model runs at (requests may ask for any threshold at
    or above it); default_threshold: a request's threshold when it gives none."""

    max_upload_bytes: int = 20 << 20
    max_pixels: int = 40_000_000
    max_classes: int = 2048
    min_threshold: float = 0.1
    default_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_pixels < 1 or self.max_classes < 1:
            raise DeticError("--max-upload-mb, --max-pixels and --max-classes must be positive")
        if not 0.0 <= self.min_threshold <= self.default_threshold <= 1.0:
            raise DeticError(f"--min-threshold {self.min_threshold} and --threshold {self.default_threshold}: need "
                             "0 <= min-threshold <= threshold <= 1")


def _too_large(limit: int) -> ServeError:
    return ServeError(413, "upload_too_large", f"the upload is over the limit of {limit} bytes (--max-upload-mb)")


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes: at once when its declared
    Content-Length does, otherwise while it streams in."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def check_upload_size(data: bytes, limits: Limits) -> None:
    if len(data) > limits.max_upload_bytes:
        raise _too_large(limits.max_upload_bytes)


def decode_image(data: bytes, limits: Limits) -> np.ndarray:
    """BGR uint8 (H, W, 3) pixels of an uploaded JPEG/PNG/WebP/BMP/TIFF, decoded as `detic detect` reads
    files (EXIF orientation applied). Refuses an empty body (400), other bytes (415), a picture over
    the pixel limit (413, from its header) and a truncated or corrupt file (400)."""
    if not data:
        raise ServeError(400, "empty_body", "the request carries no image: upload a JPEG or PNG file")
    check_upload_size(data, limits)
    try:
        with Image.open(BytesIO(data), formats=FORMATS) as img:
            (width, height), kind = img.size, img.format
    except Image.DecompressionBombError:  # PIL's own cut (twice Image.MAX_IMAGE_PIXELS), met while opening
        raise ServeError(413, "image_too_large", f"the image header claims over {2 * Image.MAX_IMAGE_PIXELS} pixels, "
                         f"over the limit of {limits.max_pixels} (--max-pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ServeError(415, "not_an_image", "the upload is not a JPEG, PNG, WebP, BMP or TIFF image") from None
    if width * height > limits.max_pixels:
        raise ServeError(413, "image_too_large", f"the image is {width}x{height} = {width * height} pixels, over "
                                                 f"the limit of {limits.max_pixels} (--max-pixels)")
    try:
        return read_image_bgr(BytesIO(data))
    except (DeticError, Image.DecompressionBombError):
        raise ServeError(400, "corrupt_image", f"the {kind} image cannot be decoded: it is truncated or "
                                               "corrupt") from None


def parse_threshold(value: str | float | None, limits: Limits) -> float:
    """A request's score threshold: in [0, 1] and not below the cut the model runs at."""
    if value is None or value == "":
        return limits.default_threshold
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise ServeError(422, "bad_threshold", f"threshold {value!r}: must be a number between 0 and 1")
    if number < limits.min_threshold:
        raise ServeError(422, "bad_threshold", f"threshold {number}: this server's model runs at "
                                               f"{limits.min_threshold} (--min-threshold); ask for that or more")
    return number


def parse_masks(value: str | None) -> bool:
    """masks=rle (default: each detection's mask as COCO RLE, when the model has a mask head) or none."""
    word = (value or "rle").strip().lower()
    if word not in MASK_MODES:
        raise ServeError(422, "bad_masks", f"masks {value!r}: expected rle or none")
    return word == "rle"


def check_raw_type(content_type: str) -> None:
    """A raw body must say it is an image (multipart uploads are read elsewhere)."""
    if content_type.split(";", 1)[0].strip().lower() not in RAW_TYPES:
        raise ServeError(415, "unsupported_media_type", f"Content-Type {content_type or '(none)'!r}: send "
                         "multipart/form-data with an `image` file, or the image bytes as image/jpeg or image/png")
