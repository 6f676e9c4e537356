"""Decoded training images by `tar_index` (DATALOADER.USE_TAR_DATASET), read through the prepare tar reader.

The bytes come from `detic_cli.data.prepare.tar_reader.TarImages` (the layout `detic data prepare
imagenet-lvis` writes: TARFILE_PATH lists the tars, TAR_INDEX_DIR holds their member indexes);
this module turns them into (H, W, 3) uint8 BGR pixels with EXIF orientation applied, as
`image_io.read_image_bgr` does for files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from detic_cli.errors import DeticError


class TarImageDecoder:
    """Callable `(tar_index) -> (H, W, 3) uint8 BGR`; picklable, so DataLoader workers can use it."""

    def __init__(self, tar_files: Path, index_dir: Path) -> None:
        from detic_cli.data.prepare.tar_reader import TarImages

        for path, key in ((tar_files, "DATALOADER.TARFILE_PATH"), (index_dir, "DATALOADER.TAR_INDEX_DIR")):
            if not Path(path).exists():
                raise DeticError(f"{key}: {path} not found; run `detic data prepare imagenet-lvis` to make it")
        self.reader = TarImages(Path(tar_files), Path(index_dir))

    def __len__(self) -> int:
        return len(self.reader)

    def __call__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.reader):
            raise DeticError(f"tar_index {index} outside the {len(self.reader)} images of the tar files")
        try:
            with Image.open(io.BytesIO(self.reader.read(index))) as img:
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = np.asarray(img.convert("RGB"))
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise DeticError(f"tar_index {index}: cannot decode the image ({exc})") from exc
        return np.ascontiguousarray(rgb[:, :, ::-1])
