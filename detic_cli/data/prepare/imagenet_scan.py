"""Find ImageNet-21K classes on disk and read their images' sizes: per-class tar files read in place,
or class folders (extracted).

Layouts under `imagenet/` (one class per WordNet id `nXXXXXXXX`):
- `ImageNet-21K/nXXXXXXXX.tar` (as downloaded; `ImageNet-21k/` also accepted): indexed in place,
  records carry `tar_index` into `imagenet/metadata-22k/tar_files.npy` (the original's
  `DATALOADER.TARFILE_PATH` / `TAR_INDEX_DIR` defaults);
- `ImageNet-LVIS/nXXXXXXXX/*.JPEG` (the original's extracted LVIS classes) or
  `ImageNet-21K/nXXXXXXXX/*.JPEG`: records carry `file_name` relative to `imagenet/ImageNet-LVIS/`,
  the image root of the original `imagenet_lvis_v1` and `imagenet_lvis-22k` datasets.
A class found several ways is read from ImageNet-LVIS first, then a 21K folder, then its tar.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detic_cli.data.prepare.base import Progress
from detic_cli.data.prepare.images import file_size, is_image_name
from detic_cli.data.prepare.tar_index import TarScan, scan_tar, write_tar_index, write_tar_list

IMAGE_ROOT = "imagenet/ImageNet-LVIS"
FULL_DIRS = ("imagenet/ImageNet-21K", "imagenet/ImageNet-21k")
TAR_LIST = "imagenet/metadata-22k/tar_files.npy"
TAR_INDEX_DIR = "imagenet/metadata-22k/tarindex_npy"


@dataclass(frozen=True)
class ClassSource:
    wnid: str
    path: Path  # a .tar file or a class folder
    file_prefix: str = ""  # folder classes: prefix of file_name relative to IMAGE_ROOT

    @property
    def is_tar(self) -> bool:
        return self.path.suffix == ".tar"


def _is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def find_class_sources(root: Path) -> list[ClassSource]:
    """Every class found under `root/imagenet`, one source per WordNet id, sorted by id."""
    found: dict[str, ClassSource] = {}
    for rel in FULL_DIRS:
        base = root / rel
        if base.is_dir():
            for entry in sorted(base.iterdir()):
                if entry.suffix == ".tar" and entry.is_file() and _is_wnid(entry.stem):
                    found.setdefault(entry.stem, ClassSource(entry.stem, entry))
    for rel, prefix in ((rel, f"../{Path(rel).name}/") for rel in FULL_DIRS):
        _add_folders(found, root / rel, prefix)
    _add_folders(found, root / IMAGE_ROOT, "")
    return [found[w] for w in sorted(found)]


def _add_folders(found: dict[str, ClassSource], base: Path, prefix: str) -> None:
    if not base.is_dir():
        return
    for entry in sorted(base.iterdir()):
        if entry.is_dir() and _is_wnid(entry.name):
            found[entry.name] = ClassSource(entry.name, entry, prefix + entry.name + "/")


def _folder_images(source: ClassSource) -> list[dict[str, Any]]:
    out = []
    for entry in sorted(os.scandir(source.path), key=lambda e: e.name):
        if entry.is_file() and is_image_name(entry.name):
            hw = file_size(Path(entry.path))
            if hw is not None:
                out.append({"file_name": source.file_prefix + entry.name, "height": hw[0], "width": hw[1]})
    return out


def _scan(source: ClassSource) -> TarScan | list[dict[str, Any]]:
    return scan_tar(source.path) if source.is_tar else _folder_images(source)


def class_images(root: Path, sources: list[ClassSource], *, progress: Progress,
                 workers: int | None = None) -> Iterator[tuple[ClassSource, list[dict[str, Any]]]]:
    """(source, image records) per class in `sources` order; a record has `height`, `width` and
    `file_name` or `tar_index`. Unreadable images are left out (tar members keep their index slot).
    Tar indexes and the tar list are written under `root/imagenet/metadata-22k/` on the way."""
    tars: list[str] = []
    next_index = 0
    (root / IMAGE_ROOT).mkdir(parents=True, exist_ok=True)  # the datasets' image root, even for tars
    progress.start("imagenet classes", len(sources))
    try:
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            for source, result in zip(sources, pool.map(_scan, sources)):
                if isinstance(result, TarScan):
                    write_tar_index(root / TAR_INDEX_DIR, result)
                    tars.append("datasets/" + source.path.relative_to(root).as_posix())
                    records = [{"tar_index": next_index + i, "height": m.hw[0], "width": m.hw[1]}
                               for i, m in enumerate(result.members) if m.hw is not None]
                    next_index += len(result.members)
                else:
                    records = result
                yield source, records
                progress.advance(1)
    finally:
        progress.finish()
    if tars:
        write_tar_list(root / TAR_LIST, tars)
