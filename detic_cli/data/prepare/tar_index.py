"""Index image members of plain (uncompressed) tar files in place, in the original Detic layout.

The original trains on ImageNet-21K straight from its per-class tar files through two metadata
files (`DATALOADER.TARFILE_PATH`, `DATALOADER.TAR_INDEX_DIR`): `tar_files.npy` lists the tars in
order, and for each tar `<stem>_names.npy` holds its image member names and `<stem>_offsets.npy`
the 512-byte block of each member's header plus, last, the block where the archive's end marker
starts. An image's global `tar_index` counts members across the tars in list order. This module
also writes `<stem>_spans.npy` ((N, 2) int64: byte offset of the member's data, its size in bytes),
so a reader can slice a member exactly whatever headers precede it (GNU long names, pax).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detic_cli.data.prepare.images import header_size, is_image_name
from detic_cli.errors import DeticError
from detic_cli.utils import atomic_write_bytes

BLOCK = 512


@dataclass(frozen=True)
class TarMember:
    """One image member: name inside the tar, header block, data byte offset, data size in bytes,
    and (height, width) from its header, None when it is not a readable image."""

    name: str
    header_block: int
    data_offset: int
    size: int
    hw: tuple[int, int] | None


@dataclass(frozen=True)
class TarScan:
    path: Path
    members: list[TarMember]
    end_block: int


def scan_tar(path: Path) -> TarScan:
    """The image members of `path` in archive order, each with its size read from the header."""
    members = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if not info.isfile() or not is_image_name(info.name):
                    continue
                handle = tar.extractfile(info)
                hw = header_size(handle) if handle is not None else None
                members.append(TarMember(info.name, info.offset // BLOCK, info.offset_data, info.size, hw))
            end_block = tar.offset // BLOCK
    except (tarfile.TarError, OSError) as exc:
        raise DeticError(f"{path}: not a readable uncompressed tar file ({exc}); re-download it") from exc
    return TarScan(path, members, end_block)


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def write_tar_index(index_dir: Path, scan: TarScan) -> None:
    """`<stem>_names.npy`, `<stem>_offsets.npy` and `<stem>_spans.npy` of one scanned tar."""
    stem = scan.path.stem
    names = np.asarray([m.name for m in scan.members], dtype=str)
    offsets = np.asarray([m.header_block for m in scan.members] + [scan.end_block], dtype=np.int64)
    spans = np.asarray([(m.data_offset, m.size) for m in scan.members], dtype=np.int64).reshape(-1, 2)
    _save_npy(index_dir / f"{stem}_names.npy", names)
    _save_npy(index_dir / f"{stem}_offsets.npy", offsets)
    _save_npy(index_dir / f"{stem}_spans.npy", spans)


def write_tar_list(path: Path, tar_paths: list[str]) -> None:
    """`tar_files.npy`: the tar paths in global-index order (as strings)."""
    _save_npy(path, np.asarray(tar_paths, dtype=str))
