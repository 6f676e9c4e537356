"""A downloadable file: where it lives publicly, its cache name, and what it must hash to."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("weights", "vocab")


@dataclass(frozen=True)
class Asset:
    """One file the zoo can download.

    filename: its name in the cache (`DETIC_HOME/<kind>/<filename>`) and in mirror folders; unique
        across the catalog.
    url: the public address (http(s)) the original project publishes it at; "" for a file made locally
        (a backbone converted to detector keys by `zoo pull`), which is never downloaded.
    kind: the cache subfolder, "weights" (checkpoints, backbones) or "vocab" (embeddings, names).
    sha256, size: known in advance (hex digest, bytes), or None when the publisher gives none; such
        files get both recorded at their first complete download and checked against that record.
    """

    filename: str
    url: str
    kind: str = "weights"
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Asset {self.filename}: kind must be one of {KINDS}, got {self.kind!r}")
        if "/" in self.filename or self.filename.startswith("."):
            raise ValueError(f"Asset {self.filename}: a cache file name, not a path")
