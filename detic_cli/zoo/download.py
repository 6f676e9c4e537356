"""Fetch an asset into the cache: locked, resumable, verified, renamed into place atomically.

`fetch(asset)` returns the cached path. A file appears under its final name only after its size
and sha256 match what is known (the catalog's values, else the record of its first download);
anything else is discarded with a clear error. Two processes fetching the same file serialise on a
lock, and the second finds the first one's result.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import filelock

from detic_cli.errors import DeticError
from detic_cli.progress import Progress, default_progress
from detic_cli.utils import sha256_file
from detic_cli.zoo import cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.http import NotFound, http_download
from detic_cli.zoo.hub import hf_file
from detic_cli.zoo.sources import Source, sources_for


class _AllMissing(Exception):
    """No source has the file; the message lists what each one said."""


@dataclass(frozen=True)
class Expected:
    """What a complete file must be: size in bytes and sha256 hex digest, each None if unknown."""

    size: int | None
    sha256: str | None


def expected(asset: Asset) -> Expected:
    """The catalog's size/sha256 where known, else those recorded at the first complete download."""
    record = cache.read_record(asset)
    return Expected(
        size=asset.size if asset.size is not None else (record.size if record else None),
        sha256=asset.sha256 if asset.sha256 is not None else (record.sha256 if record else None),
    )


def is_cached(asset: Asset) -> bool:
    """The file is in the cache with the expected size, and for vocabulary files (small, read on every
    use) the expected sha256; large weights are hashed by download and `zoo verify`."""
    dest = cache.cached_path(asset)
    if not dest.is_file():
        return False
    want = expected(asset)
    if want.size is not None and dest.stat().st_size != want.size:
        return False
    return asset.kind != "vocab" or want.sha256 is None or sha256_file(dest) == want.sha256


def _copy_local(src: Path, part: Path, label: str, progress: Progress) -> None:
    if not src.is_file():
        raise NotFound(f"{src} does not exist")
    total = src.stat().st_size
    progress.start(label, total, 0)
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            while block := fin.read(1 << 20):
                fout.write(block)
                progress.advance(len(block))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DeticError(f"disk full while writing {part}; free some space or point DETIC_HOME elsewhere") from exc
        raise
    finally:
        progress.finish()


def _from_source(src: Source, asset: Asset, part: Path, offline: bool, progress: Progress) -> None:
    """Fill `part` from one source; NotFound means try the next one."""
    if src.kind == "http":
        http_download(src.location, part, label=asset.filename, size=expected(asset).size, progress=progress)
    elif src.kind == "file":
        _copy_local(Path(src.location), part, asset.filename, progress)
    else:
        _copy_local(hf_file(src.location, src.path, src.revision, offline=offline), part, asset.filename, progress)


def _check(asset: Asset, part: Path, origin: str) -> tuple[int, str]:
    """(size, sha256) of the finished `.part`; a mismatch deletes it and raises DeticError."""
    want = expected(asset)
    size = part.stat().st_size
    problem = None
    if want.size is not None and size != want.size:
        problem = f"size {size} bytes, expected {want.size}"
    digest = sha256_file(part)
    if problem is None and want.sha256 is not None and digest != want.sha256:
        problem = f"sha256 {digest}, expected {want.sha256}"
    if problem:
        part.unlink(missing_ok=True)
        hint = "Pull again, or use another --mirror"
        if asset.sha256 is None:
            hint += f" (expected values recorded at its first download in {cache.record_path(asset)})"
        raise DeticError(f"{asset.filename} from {origin} is corrupt ({problem}); it was discarded. {hint}")
    return size, digest


def _missing_offline(asset: Asset, reason: str, tried: str = "") -> DeticError:
    where = f" nor in the mirror ({tried})" if tried else ""
    state = "corrupt in" if cache.cached_path(asset).is_file() else "not in"
    return DeticError(
        f"offline ({reason}): {asset.filename} is {state} the cache ({cache.cached_path(asset)}){where}; "
        f"pull it with network access (detic zoo pull ...), copy it there, or pass --mirror DIR"
    )


def _download_locked(asset: Asset, sources: list[Source], offline: bool, progress: Progress) -> Path:
    dest, part = cache.cached_path(asset), cache.part_path(asset)
    misses = []
    for src in sources:
        try:
            _from_source(src, asset, part, offline, progress)
        except NotFound as exc:
            misses.append(str(exc))
            continue
        size, digest = _check(asset, part, src.describe())
        os.replace(part, dest)
        if cache.read_record(asset) is None or asset.sha256 is not None:
            cache.write_record(asset, size, digest, src.describe())
        return dest
    raise _AllMissing("; ".join(misses))


def fetch(asset: Asset, *, mirror: str | None = None, progress: Progress | None = None) -> Path:
    """The cached path of `asset`, downloading it first if it is missing.

    mirror: a base URL, local folder or hf://owner/repo standing in for the public host (default
    $DETIC_ZOO_MIRROR). With DETIC_OFFLINE=1 or HF_HUB_OFFLINE=1 only the cache, local folders and
    the Hugging Face cache are used. Raises DeticError on any failure.
    """
    if is_cached(asset):
        return cache.cached_path(asset)
    progress = progress or default_progress()
    if cache.cached_path(asset).is_file():
        progress.note(f"{asset.filename}: the cached copy does not match its size or sha256; fetching it again")
    reason = cache.offline_reason()
    sources = sources_for(asset, mirror)
    if reason:
        sources = [s for s in sources if s.kind != "http"]
        if not sources:
            raise _missing_offline(asset, reason)
    dest = cache.cached_path(asset)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_file = cache.lock_path(asset)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_file))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        progress.note(f"{asset.filename}: another process is downloading it; waiting")
        lock.acquire()
    try:
        if is_cached(asset):
            return dest
        try:
            return _download_locked(asset, sources, reason is not None, progress)
        except _AllMissing as exc:
            raise (_missing_offline(asset, reason, str(exc)) if reason else DeticError(
                f"{asset.filename} not found: {exc}")) from exc
    finally:
        lock.release()


def pull_all(assets: list[Asset], *, mirror: str | None = None, progress: Progress | None = None) -> list[Path]:
    """`fetch` each asset once (duplicates are skipped); returns their paths in order."""
    seen: dict[Asset, Path] = {}
    for asset in assets:
        if asset not in seen:
            seen[asset] = fetch(asset, mirror=mirror, progress=progress)
    return [seen[a] for a in assets]
