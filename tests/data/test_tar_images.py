"""Training images decoded out of ImageNet-style tar files by global index (DATALOADER.USE_TAR_DATASET)."""

from __future__ import annotations

import gzip
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from detic_cli.data.tar_images import TarImageDecoder
from detic_cli.errors import DeticError

BLOCK = 512


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((5, 7, 3), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_tar(path, members: list[tuple[str, bytes]], index_dir) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    ends = infos[-1].offset_data + -(-infos[-1].size // BLOCK) * BLOCK
    offsets = [i.offset // BLOCK for i in infos] + [ends // BLOCK]  # the original index: header blocks
    np.save(index_dir / f"{path.stem}_offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(index_dir / f"{path.stem}_names.npy", np.asarray([i.name for i in infos]))


def test_tar_images_by_global_index(tmp_path):
    index_dir = tmp_path / "tarindex_npy"
    index_dir.mkdir()
    long_name = "n00000001/" + "x" * 150 + ".JPEG"  # a GNU long-name member
    _write_tar(tmp_path / "n00000001.tar", [("n00000001/a.JPEG", _png(10)), (long_name, _png(20))], index_dir)
    _write_tar(tmp_path / "n00000002.tar", [("n00000002/b.JPEG", gzip.compress(_png(30)))], index_dir)
    np.save(tmp_path / "tar_files.npy", np.asarray([str(tmp_path / "n00000001.tar"), str(tmp_path / "n00000002.tar")]))
    images = TarImageDecoder(tmp_path / "tar_files.npy", index_dir)
    assert len(images) == 3
    for index, value in enumerate((10, 20, 30)):
        pixels = images(index)
        assert pixels.shape == (5, 7, 3) and (pixels == value).all()
    with pytest.raises(DeticError, match="outside"):
        images(3)
    with pytest.raises(DeticError, match="TAR_INDEX_DIR"):
        TarImageDecoder(tmp_path / "tar_files.npy", tmp_path / "missing")
