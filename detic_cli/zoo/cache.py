"""The download cache under DETIC_HOME: where each asset lives, its record, its lock, offline mode.

Layout: `DETIC_HOME/{weights,vocab}/<filename>` (complete, verified files only),
`<filename>.part` beside it while downloading (resumable), `<filename>.json` (the record: size and
sha256 measured at the first complete download), `DETIC_HOME/locks/<kind>-<filename>.lock`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from detic_cli.utils import atomic_write_bytes, detic_home
from detic_cli.zoo.assets import Asset

_TRUE = {"1", "true", "yes", "on"}


def cached_path(asset: Asset) -> Path:
    """Where the complete, verified file lives (it may not exist yet)."""
    return detic_home() / asset.kind / asset.filename


def part_path(asset: Asset) -> Path:
    """The temporary file a download writes to; kept after an interruption so it can resume."""
    dest = cached_path(asset)
    return dest.with_name(dest.name + ".part")


def record_path(asset: Asset) -> Path:
    dest = cached_path(asset)
    return dest.with_name(dest.name + ".json")


def lock_path(asset: Asset) -> Path:
    return detic_home() / "locks" / f"{asset.kind}-{asset.filename}.lock"


def offline_reason() -> str | None:
    """"DETIC_OFFLINE=1" or "HF_HUB_OFFLINE=1" when either is set to a true value, else None."""
    for var in ("DETIC_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None


@dataclass(frozen=True)
class Record:
    """What the first complete download measured: size in bytes, sha256 hex digest, where it came
    from (URL, path or hf:// address) and when (seconds since the epoch)."""

    size: int
    sha256: str
    source: str
    downloaded_at: float


def read_record(asset: Asset) -> Record | None:
    """The stored record, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(record_path(asset).read_text(encoding="utf-8"))
        return Record(int(data["size"]), str(data["sha256"]), str(data["source"]), float(data["downloaded_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(asset: Asset, size: int, sha256: str, source: str) -> Record:
    record = Record(size=size, sha256=sha256, source=source, downloaded_at=time.time())
    atomic_write_text(record_path(asset), json.dumps(asdict(record), indent=2) + "\n")
    return record


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 `text` written atomically (temp file in the same folder, then os.replace)."""
    atomic_write_bytes(path, text.encode("utf-8"))
