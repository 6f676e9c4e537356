"""Check cached files against their known or recorded size and sha256."""

from __future__ import annotations

from dataclasses import dataclass

from detic_cli.utils import sha256_file
from detic_cli.zoo import cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import expected


@dataclass(frozen=True)
class Verdict:
    """The state of one asset in the cache.

    status: "ok" (size and sha256 match), "corrupt" (they do not; `detail` says how), "recorded"
    (nothing was known: its size and sha256 were recorded now), "partial" (only a resumable `.part`
    is there), "missing" (not cached).
    """

    asset: Asset
    status: str
    detail: str = ""


def verify_asset(asset: Asset) -> Verdict:
    """Hash the cached file (the whole file: this reads it once) and compare."""
    dest, part = cache.cached_path(asset), cache.part_path(asset)
    if not dest.is_file():
        if part.is_file():
            return Verdict(asset, "partial", f"{part.stat().st_size} bytes, the next pull resumes it")
        return Verdict(asset, "missing")
    want = expected(asset)
    size = dest.stat().st_size
    if want.size is not None and size != want.size:
        return Verdict(asset, "corrupt", f"size {size} bytes, expected {want.size}")
    digest = sha256_file(dest)
    if want.sha256 is None:
        cache.write_record(asset, size, digest, "found in cache")
        return Verdict(asset, "recorded", f"sha256 {digest}")
    if digest != want.sha256:
        return Verdict(asset, "corrupt", f"sha256 {digest}, expected {want.sha256}")
    return Verdict(asset, "ok", f"sha256 {digest[:16]}…")
