"""Downloads against a local HTTP server: resume, Range ignored, truncation, corruption, hashes,
locking between processes, offline mode, mirrors and clear errors."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from detic_cli.errors import DeticError
from detic_cli.progress import NullProgress
from detic_cli.zoo import cache
from detic_cli.zoo import http as zoo_http
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import fetch
from detic_cli.zoo.sources import parse_hf, sources_for
from tests.zoo.hub_server import LocalHub

DATA = random.Random(0).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
PATH = "/detic/model.pth"


def _get(asset: Asset, **kw) -> Path:
    return fetch(asset, progress=NullProgress(), **kw)


@pytest.fixture
def weights(server, online) -> Asset:
    """A checkpoint-like asset (no known hash) served at PATH."""
    server.state.files[PATH] = DATA
    return Asset("model.pth", server.url(PATH))


def _nothing_final(asset: Asset) -> bool:
    return not cache.cached_path(asset).exists()


def test_full_pull_records_size_and_hash(server, weights):
    path = _get(weights)
    assert path == cache.cached_path(weights) and path.read_bytes() == DATA
    record = cache.read_record(weights)
    assert (record.size, record.sha256, record.source) == (len(DATA), SHA, weights.url)
    assert not cache.part_path(weights).exists()
    assert _get(weights) == path
    assert server.requests_for(PATH) == [None]  # the second call used the cache


def test_interrupted_pull_resumes_with_range(server, weights):
    server.state.mode = "truncate"
    with pytest.raises(DeticError, match="stopped at .* run the same command again to resume"):
        _get(weights)
    part = cache.part_path(weights)
    assert part.exists() and 0 < part.stat().st_size < len(DATA) and _nothing_final(weights)
    have = part.stat().st_size
    server.state.mode = "normal"
    server.state.requests.clear()
    assert _get(weights).read_bytes() == DATA
    assert server.requests_for(PATH) == [f"bytes={have}-"]


def test_broken_connection_is_retried_within_one_pull(server, weights):
    server.state.truncate_next = 1
    assert _get(weights).read_bytes() == DATA
    ranges = server.requests_for(PATH)
    assert ranges[0] is None and ranges[1] == f"bytes={len(DATA) // 2}-" and len(ranges) == 2


def test_server_ignoring_range_restarts_from_zero(server, weights):
    part = cache.part_path(weights)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    server.state.mode = "ignore_range"
    assert _get(weights).read_bytes() == DATA
    assert server.requests_for(PATH) == ["bytes=1000-"]


def test_truncated_body_is_reported_and_kept_for_resume(server, weights):
    server.state.mode = "truncate"
    with pytest.raises(DeticError, match=r"stopped at \d+ of 300000 bytes after 3 attempts"):
        _get(weights)
    assert len(server.requests_for(PATH)) == 3 and _nothing_final(weights)


def test_corrupted_bytes_with_right_length_are_refused(server, online):
    server.state.files[PATH] = DATA
    server.state.mode = "corrupt"
    asset = Asset("vocab.npy", server.url(PATH), kind="vocab", sha256=SHA, size=len(DATA))
    with pytest.raises(DeticError, match="corrupt .*sha256"):
        _get(asset)
    assert _nothing_final(asset) and not cache.part_path(asset).exists()


def test_redownload_of_weights_is_checked_against_first_record(server, weights):
    _get(weights)
    cache.cached_path(weights).unlink()
    server.state.mode = "corrupt"
    with pytest.raises(DeticError, match="recorded at its first download"):
        _get(weights)
    assert _nothing_final(weights) and not cache.part_path(weights).exists()


def test_wrong_hash_is_refused(server, online):
    server.state.files[PATH] = DATA
    asset = Asset("model.pth", server.url(PATH), sha256="0" * 64)
    with pytest.raises(DeticError, match=f"sha256 {SHA}, expected 0000"):
        _get(asset)
    assert _nothing_final(asset) and not cache.part_path(asset).exists()


def test_two_processes_pulling_the_same_file(server, weights):
    server.state.delay = 0.08  # about 1.5 s per body: the second process starts while the first downloads
    code = ("import sys; from detic_cli.zoo.assets import Asset; from detic_cli.zoo.download import fetch;"
            "from detic_cli.progress import BarProgress;"
            "print(fetch(Asset('model.pth', sys.argv[1]), progress=BarProgress()))")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code, weights.url], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    first = start()
    deadline = time.monotonic() + 30
    while not server.state.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    second = start()
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert {out.strip() for out, _ in outs} == {str(cache.cached_path(weights))}
    assert "another process is downloading it; waiting" in outs[1][1]
    assert cache.cached_path(weights).read_bytes() == DATA
    assert len(server.requests_for(PATH)) == 1  # the second process found the first one's file
    assert not cache.part_path(weights).exists()


@pytest.mark.parametrize("var", ["DETIC_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_warm_cache(server, weights, monkeypatch, var):
    _get(weights)
    monkeypatch.setenv(var, "1")
    assert _get(weights).read_bytes() == DATA
    assert len(server.requests_for(PATH)) == 1


def test_offline_with_cold_cache_says_what_is_missing(server, weights, monkeypatch):
    monkeypatch.setenv("DETIC_OFFLINE", "1")
    with pytest.raises(DeticError, match=r"offline \(DETIC_OFFLINE=1\): model.pth is not in the cache"):
        _get(weights)
    assert server.state.requests == []


def test_mirror_folder_by_name_and_by_url_path(tmp_path, monkeypatch):
    asset = Asset("model.pth", "http://127.0.0.1:9/detic/model.pth")  # never contacted
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "model.pth").write_bytes(DATA)
    assert _get(asset, mirror=str(flat)).read_bytes() == DATA  # works offline too (HF_HUB_OFFLINE=1)
    cache.cached_path(asset).unlink()
    nested = tmp_path / "nested" / "detic"
    nested.mkdir(parents=True)
    (nested / "model.pth").write_bytes(DATA)
    monkeypatch.setenv("DETIC_ZOO_MIRROR", str(tmp_path / "nested"))
    assert _get(asset).read_bytes() == DATA


def test_mirror_folder_missing_file_and_missing_folder(tmp_path, monkeypatch):
    asset = Asset("model.pth", "http://127.0.0.1:9/detic/model.pth")
    with pytest.raises(DeticError, match="offline .*not in the cache .* nor in the mirror .*does not exist"):
        _get(asset, mirror=str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(DeticError, match="model.pth not found: .*model.pth does not exist"):
        _get(asset, mirror=str(tmp_path))
    with pytest.raises(DeticError, match="no such folder"):
        _get(asset, mirror=str(tmp_path / "nope"))


def test_mirror_base_url(server, online):
    server.state.files["/mirror/model.pth"] = DATA
    asset = Asset("model.pth", "https://dl.example.invalid/detic/model.pth")
    assert _get(asset, mirror=server.url("/mirror/")).read_bytes() == DATA


def test_http_404_names_the_url(server, online):
    asset = Asset("gone.pth", server.url("/gone.pth"))
    with pytest.raises(DeticError, match="gone.pth not found: HTTP 404 at http://127.0.0.1"):
        _get(asset)


def test_no_network_is_a_clear_error(online):
    asset = Asset("model.pth", "http://127.0.0.1:9/model.pth")  # discard port: connection refused
    with pytest.raises(DeticError, match="cannot reach 127.0.0.1:9 .*--mirror"):
        _get(asset)


def test_disk_full_before_and_while_writing(server, weights, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(zoo_http.shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 10, 10))
    with pytest.raises(DeticError, match="disk full: .* 300000 more are needed"):
        _get(weights)
    monkeypatch.undo()

    class FullFile:
        def __init__(self, *_):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def seek(self, _):
            pass

        def truncate(self):
            pass

        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zoo_http, "open", FullFile, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(DeticError, match="disk full while writing"):
        _get(weights)
    assert _nothing_final(weights)


_FETCH = """
import json, sys
from detic_cli.errors import DeticError
from detic_cli.zoo.assets import Asset
from detic_cli.zoo.download import fetch
from detic_cli.progress import NullProgress
out = []
for mirror in sys.argv[1:]:
    try:
        asset = Asset("model.pth", "https://dl.example.invalid/detic/model.pth")
        out.append(str(fetch(asset, mirror=mirror, progress=NullProgress())))
    except DeticError as exc:
        out.append(f"DeticError: {exc}")
print(json.dumps(out))
"""


def _fetch_in_subprocess(hub: LocalHub, tmp_path: Path, home: str, *mirrors: str, offline: bool = False) -> list:
    """`fetch` of each mirror in a fresh interpreter: huggingface_hub reads HF_ENDPOINT, its cache folder and
    HF_HUB_OFFLINE when imported, so they are set before that; DETIC_HOME is `tmp_path / home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DETIC_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_CACHE=str(tmp_path / "hf_cache"),
               HF_HUB_DISABLE_TELEMETRY="1", DETIC_HOME=str(tmp_path / home), NO_PROXY="127.0.0.1",
               no_proxy="127.0.0.1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-c", _FETCH, *mirrors], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_hf_mirror_goes_through_huggingface_hub(tmp_path):
    """huggingface_hub's own code (metadata from HEAD /resolve, download from the storage host, its cache
    layout) against a local Hub; then, offline, the same file from that cache with no request at all."""
    hub = LocalHub()
    try:
        commit = hub.add("someone/detic-zoo", "v1", {"weights/model.pth": DATA, "README.md": b"zoo"})
        missing_file, missing_repo, missing_rev, found = _fetch_in_subprocess(
            hub, tmp_path, "home1", "hf://someone/detic-zoo@v1/elsewhere", "hf://someone/no-such-repo",
            "hf://someone/detic-zoo@v9/weights", "hf://someone/detic-zoo@v1/weights")
        assert hub.requests[-2:] == [("HEAD", "/someone/detic-zoo/resolve/v1/weights/model.pth"),
                                     ("GET", f"/blobs/{SHA}")]
        seen = len(hub.requests)
        offline_missing, offline_found = _fetch_in_subprocess(
            hub, tmp_path, "home2", "hf://someone/detic-zoo@v1/elsewhere", "hf://someone/detic-zoo@v1/weights",
            offline=True)
        assert len(hub.requests) == seen  # offline: the Hub is not asked
    finally:
        hub.close()
    assert [missing_file, missing_repo, missing_rev] == [
        f"DeticError: model.pth not found: hf://{where}/model.pth does not exist"
        for where in ("someone/detic-zoo@v1/elsewhere", "someone/no-such-repo", "someone/detic-zoo@v9/weights")]
    for path, home in ((found, "home1"), (offline_found, "home2")):  # each DETIC_HOME gets its own copy
        assert Path(path).is_relative_to(tmp_path / home), path
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == SHA
    hub_cache = tmp_path / "hf_cache" / "models--someone--detic-zoo"
    assert hashlib.sha256((hub_cache / "blobs" / SHA).read_bytes()).hexdigest() == SHA
    assert (hub_cache / "refs" / "v1").read_text() == commit
    assert (hub_cache / "snapshots" / commit / "weights" / "model.pth").read_bytes() == DATA
    assert offline_missing.startswith("DeticError: offline (HF_HUB_OFFLINE=1): model.pth is not in the cache")


def test_parse_hf_and_sources():
    assert parse_hf("hf://a/b") == ("a/b", None, "")
    assert parse_hf("hf://a/b@main/x/y.pth") == ("a/b", "main", "x/y.pth")
    with pytest.raises(DeticError, match="hf://OWNER/REPO"):
        parse_hf("hf://justowner")
    asset = Asset("a+b.npy", "https://host/x/a+b.npy", kind="vocab")
    assert [s.location for s in sources_for(asset, "http://m/base/")] == [
        "http://m/base/a%2Bb.npy", "http://m/base/x/a%2Bb.npy"]
    assert [s.location for s in sources_for(asset, None)] == [asset.url]
