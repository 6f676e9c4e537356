"""Where an asset can be fetched from: its public URL, a mirror (base URL, local folder, or a
Hugging Face Hub repository `hf://owner/repo[@revision][/folder]`), in the order to try."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from detic_cli.errors import DeticError
from detic_cli.zoo.assets import Asset

MIRROR_ENV = "DETIC_ZOO_MIRROR"


@dataclass(frozen=True)
class Source:
    """One place to try. kind: "http" (location is a URL), "file" (a local path) or "hf"
    (location is "owner/repo", path the file inside it, revision a branch/tag/commit or None)."""

    kind: str
    location: str
    path: str = ""
    revision: str | None = None

    def describe(self) -> str:
        if self.kind == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"hf://{self.location}{rev}/{self.path}"
        return self.location


def parse_hf(spec: str) -> tuple[str, str | None, str]:
    """`hf://owner/repo[@rev][/path]` -> ("owner/repo", rev or None, "path" or "")."""
    body = spec[len("hf://"):].strip("/")
    parts = body.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise DeticError(f"{spec}: write a Hugging Face source as hf://OWNER/REPO[@REVISION][/PATH]")
    repo, _, revision = parts[1].partition("@")
    return f"{parts[0]}/{repo}", revision or None, "/".join(parts[2:])


def _url_path(asset: Asset) -> str:
    """The public URL's path without the leading slash, e.g. `detic/NAME.pth`."""
    return unquote(urlsplit(asset.url).path).lstrip("/")


def active_mirror(mirror: str | None) -> str | None:
    """The mirror to use: the argument, else $DETIC_ZOO_MIRROR, else None (public hosts)."""
    return mirror or os.environ.get(MIRROR_ENV) or None


def sources_for(asset: Asset, mirror: str | None = None) -> list[Source]:
    """The places to try for `asset`, in order. A mirror stands in for the public hosts (no fallback
    to them): inside it a file is looked up by its cache name, then by its public URL's path."""
    base = active_mirror(mirror)
    if base is None:
        return [Source("http", asset.url)]
    names = [asset.filename, _url_path(asset)]
    if base.startswith("hf://"):
        repo, revision, folder = parse_hf(base)
        return [Source("hf", repo, f"{folder}/{asset.filename}".lstrip("/"), revision)]
    if base.startswith(("http://", "https://")):
        return [Source("http", f"{base.rstrip('/')}/{quote(n)}") for n in names]
    folder = Path(unquote(base[len("file://"):]) if base.startswith("file://") else base).expanduser()
    if not folder.is_dir():
        raise DeticError(f"mirror {base}: no such folder; pass a base URL, hf://OWNER/REPO or an existing folder")
    return [Source("file", str(folder / n)) for n in names]
