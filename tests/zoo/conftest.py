"""A local HTTP file server (127.0.0.1, own thread) with Range support and failure modes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest


@dataclass
class ServerState:
    """files: URL path -> body. mode: "normal", "ignore_range" (always 200 with the whole body),
    "truncate" (announce the full length, send half, close), "corrupt" (same length, flipped bytes).
    truncate_next: that many next responses are truncated whatever the mode. delay: seconds slept
    per 16 KiB chunk. requests: (path, Range header or None) of every request, in order."""

    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "normal"
    truncate_next: int = 0
    delay: float = 0.0
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server_version = "detic-test/1"

    def log_message(self, format, *args):  # noqa: A002 - silence the access log
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        state: ServerState = self.server.state
        path = unquote(urlsplit(self.path).path)
        state.requests.append((path, self.headers.get("Range")))
        data = state.files.get(path)
        if data is None:
            self.send_error(404)
            return
        if state.mode == "corrupt":
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start, status = self._range(len(data), state)
        if status == 416:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.truncate_next > 0 or state.mode == "truncate":
            state.truncate_next = max(0, state.truncate_next - 1)
            body = body[: len(body) // 2]
        for i in range(0, len(body), 16384):
            self.wfile.write(body[i:i + 16384])
            if state.delay:
                time.sleep(state.delay)

    def _range(self, size: int, state: ServerState) -> tuple[int, int]:
        header = self.headers.get("Range")
        if not header or state.mode == "ignore_range":
            return 0, 200
        start = int(header.removeprefix("bytes=").split("-")[0])
        return (start, 206) if start < size else (0, 416)


class LocalServer:
    def __init__(self) -> None:
        self.state = ServerState()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.state = self.state
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def requests_for(self, path: str) -> list[str | None]:
        """The Range headers of the requests made for `path`."""
        return [rng for p, rng in self.state.requests if p == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def online(monkeypatch):
    """Network allowed (the suite's conftest sets HF_HUB_OFFLINE=1), no mirror from the environment."""
    for var in ("HF_HUB_OFFLINE", "DETIC_OFFLINE", "DETIC_ZOO_MIRROR"):
        monkeypatch.delenv(var, raising=False)
