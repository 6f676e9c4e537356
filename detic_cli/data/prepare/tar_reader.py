"""Read images by global `tar_index` from tar files indexed as in the original Detic (see tar_index).

`TarImages(tar_files_npy, index_dir)` is the equivalent of the original `DiskTarDataset`: `len()` is
the number of indexed members, `read(i)` the bytes of member i (gzip-wrapped members unwrapped),
`locate(i)` its (tar path, member name). Members are sliced with `<stem>_spans.npy` when present,
else from the header blocks in `<stem>_offsets.npy`, skipping one header block (three after a GNU
`././@LongLink` header) as the original does.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from detic_cli.data.paths import dataset_path
from detic_cli.errors import DeticError

BLOCK = 512
_LONGLINK = b"././@LongLink"
_REMAKE = "run `detic data prepare imagenet-lvis`"


class TarImages:
    """Global index -> image bytes over the tars listed in `tar_files` (`.npy` of path strings).

    resolve: turns a listed path into a file path; the default resolves `datasets/...` under the
    datasets root ($DETIC_DATASETS) and keeps other paths as they are.
    """

    def __init__(self, tar_files: Path, index_dir: Path, *, resolve: Callable[[str], Path] = dataset_path) -> None:
        try:
            listed = [str(p) for p in np.load(tar_files, allow_pickle=False)]
        except (OSError, ValueError) as exc:
            raise DeticError(f"{tar_files}: not a tar list (.npy of paths); {_REMAKE}") from exc
        self._tars = [resolve(p) for p in listed]
        self._index_dir = index_dir
        self._names: list[np.ndarray] = []
        starts, total = [], 0
        for tar in self._tars:
            names = self._load(tar, "names")
            self._names.append(names)
            starts.append(total)
            total += len(names)
        self._starts, self._total = starts, total
        self._spans: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self._total

    def _load(self, tar: Path, kind: str) -> np.ndarray:
        path = self._index_dir / f"{tar.stem}_{kind}.npy"
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DeticError(f"{path}: tar index missing or unreadable; {_REMAKE}") from exc

    def locate(self, index: int) -> tuple[Path, str]:
        """(tar file, member name) of global index `index`."""
        k, local = self._split(index)
        return self._tars[k], str(self._names[k][local])

    def _split(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self._total:
            raise IndexError(f"tar_index {index} outside [0, {self._total})")
        k = bisect.bisect_right(self._starts, index) - 1
        return k, index - self._starts[k]

    def _span(self, k: int, local: int) -> tuple[int, int]:
        if k not in self._spans:
            tar = self._tars[k]
            spans_file = self._index_dir / f"{tar.stem}_spans.npy"
            self._spans[k] = (np.load(spans_file, allow_pickle=False) if spans_file.is_file()
                              else self._load(tar, "offsets") * BLOCK)
        table = self._spans[k]
        if table.ndim == 2:
            return int(table[local, 0]), int(table[local, 1])
        return int(table[local]), int(table[local + 1] - table[local])

    def read(self, index: int) -> bytes:
        """The bytes of image `index` (whole-block slices may carry trailing zero padding)."""
        k, local = self._split(index)
        start, size = self._span(k, local)
        with open(self._tars[k], "rb") as handle:
            handle.seek(start)
            data = handle.read(size)
        if self._spans[k].ndim == 1:  # original layout: the slice starts at the member's header
            data = data[3 * BLOCK:] if data.startswith(_LONGLINK) else data[BLOCK:]
        return _gunzip_first(data) if data[:2] == b"\x1f\x8b" else data


def _gunzip_first(data: bytes) -> bytes:
    """The first gzip member of `data`; whatever follows it (block padding, other members) is ignored."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data)
    except zlib.error as exc:
        raise DeticError(f"corrupt gzip-wrapped image in a tar file ({exc})") from exc
