"""`verify_asset`: ok, corrupt, recorded, partial and missing files."""

from __future__ import annotations

import hashlib

from detic_cli.zoo import cache
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.verify import verify_asset

BODY = b"verified bytes" * 100


def _place(asset: Asset, data: bytes) -> None:
    path = cache.cached_path(asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_known_hash_ok_and_corrupt():
    asset = Asset("v.npy", "https://x/v.npy", kind="vocab", sha256=hashlib.sha256(BODY).hexdigest(), size=len(BODY))
    assert verify_asset(asset).status == "missing"
    _place(asset, BODY)
    assert verify_asset(asset).status == "ok"
    _place(asset, b"X" + BODY[1:])
    verdict = verify_asset(asset)
    assert verdict.status == "corrupt" and "expected" in verdict.detail


def test_unknown_hash_is_recorded_then_checked():
    asset = Asset("w.pth", "https://x/w.pth")
    _place(asset, BODY)
    assert verify_asset(asset).status == "recorded"
    assert cache.read_record(asset).sha256 == hashlib.sha256(BODY).hexdigest()
    assert verify_asset(asset).status == "ok"
    _place(asset, BODY[:-1] + b"!")
    assert verify_asset(asset).status == "corrupt"


def test_partial_download_is_reported():
    asset = Asset("p.pth", "https://x/p.pth")
    part = cache.part_path(asset)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"half")
    verdict = verify_asset(asset)
    assert verdict.status == "partial" and verdict.detail.startswith("4 bytes")
