"""Resumable HTTP(S) download into a `.part` file (standard library only).

Resumes with `Range: bytes=N-`; restarts from zero when the server ignores it (200) or answers a
range it was not asked for; retries an interrupted or short body a few times, keeping what arrived.
"""

from __future__ import annotations

import errno
import http.client
import re
import shutil
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from detic_cli import __version__
from detic_cli.errors import DeticError
from detic_cli.progress import Progress

CHUNK = 1 << 20
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class NotFound(Exception):
    """The server has no such file (404/410): try the next source."""


class _Interrupted(Exception):
    """The body stopped early or the connection broke: resume from what arrived."""


class _Complete(Exception):
    """The server says the `.part` already holds the whole file (416 with `bytes */N`, N = its size)."""


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _check_space(part: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise DeticError(
            f"disk full: {part.parent} has {free} bytes free, {needed} more are needed for {part.name[:-5]}; "
            "free some space or point DETIC_HOME to a larger disk"
        )


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"detic/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code in (404, 410):
            raise NotFound(f"HTTP {exc.code} at {url}") from exc
        if exc.code == 416 and offset:
            if exc.headers.get("Content-Range", "").strip() == f"bytes */{offset}":
                raise _Complete() from exc
            raise _Interrupted("range not satisfiable") from exc
        raise DeticError(f"{url}: HTTP {exc.code} {exc.reason}; try again later or pass --mirror") from exc
    except URLError as exc:
        host = urlsplit(url).netloc
        raise DeticError(
            f"cannot reach {host} ({exc.reason}); check the network, pass --mirror URL|DIR "
            "(or set DETIC_ZOO_MIRROR), or set DETIC_OFFLINE=1 to use the cache only"
        ) from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc)) from exc


def _start_offset(resp: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(where this body starts in the file, the file's total size or None)."""
    length = resp.headers.get("Content-Length")
    if resp.status == 206:
        match = _RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            total = match.group(3)
            return offset, int(total) if total != "*" else None
        return -1, None  # a range we did not ask for: start over
    return 0, int(length) if length is not None else None


def _copy_body(resp: http.client.HTTPResponse, part: Path, start: int, progress: Progress) -> None:
    try:
        with open(part, "r+b" if start else "wb") as f:
            f.seek(start)
            f.truncate()
            while block := resp.read(CHUNK):
                f.write(block)
                progress.advance(len(block))
            f.flush()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DeticError(
                f"disk full while writing {part}; free some space or point DETIC_HOME to a larger disk "
                "(the part already downloaded is kept and the next pull resumes it)"
            ) from exc
        if isinstance(exc, (TimeoutError, ConnectionError)):
            raise _Interrupted(str(exc)) from exc
        raise
    except http.client.HTTPException as exc:
        raise _Interrupted(str(exc)) from exc


def _attempt(url: str, part: Path, label: str, size: int | None, progress: Progress, timeout: float) -> int | None:
    """One request resuming from the current `.part` size; returns the file's total size if known."""
    offset = _size(part)
    with _open(url, offset, timeout) as resp:
        start, total = _start_offset(resp, offset)
        if start < 0:
            part.unlink(missing_ok=True)
            raise _Interrupted("server answered another range")
        total = total if total is not None else size
        _check_space(part, None if total is None else total - start)
        progress.start(label, total, start)
        try:
            _copy_body(resp, part, start, progress)
        finally:
            progress.finish()
    return total


def http_download(url: str, part: Path, *, label: str, size: int | None, progress: Progress,
                  attempts: int = 3, timeout: float = 30.0) -> None:
    """Fill `part` with the body of `url`, resuming what is already there.

    size: the expected total in bytes when known (a longer `.part` is discarded). Raises NotFound for
    404/410, DeticError for other failures; a short body is retried `attempts` times and then
    reported, keeping the `.part` so that the next call resumes it.
    """
    if size is not None and _size(part) > size:
        part.unlink()
    total: int | None = None
    for _ in range(attempts):
        if size is not None and _size(part) == size:
            return
        try:
            total = _attempt(url, part, label, size, progress, timeout)
        except _Complete:
            return
        except _Interrupted as exc:
            progress.note(f"{label}: interrupted ({exc}); resuming")
            if str(exc) == "range not satisfiable":
                part.unlink(missing_ok=True)
            continue
        if total is None or _size(part) == total:
            return
        progress.note(f"{label}: got {_size(part)} of {total} bytes; resuming")
    raise DeticError(
        f"download of {url} stopped at {_size(part)} of {total if total is not None else '?'} bytes "
        f"after {attempts} attempts; run the same command again to resume"
    )
