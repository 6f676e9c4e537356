"""A local stand-in for the Hugging Face Hub's file endpoints (127.0.0.1, own threads), for running
huggingface_hub's real download code with HF_ENDPOINT pointing here.

Like the Hub for an LFS file: `HEAD|GET /{owner}/{name}/resolve/{revision}/{path}` answers 302 to a
separate storage host (another port, so huggingface_hub treats it as a CDN and takes the metadata from
the redirect itself) with `X-Repo-Commit`, `X-Linked-Etag` (the file's sha256, quoted) and
`X-Linked-Size`; the storage host serves `GET /blobs/{sha256}`. Errors carry the Hub's `X-Error-Code`:
RepoNotFound (401), RevisionNotFound (404), EntryNotFound (404, with the commit).
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - silence the access log
        pass

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _HubHandler(_Quiet):
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._resolve()

    def do_GET(self):  # noqa: N802
        self._resolve()

    def _resolve(self) -> None:
        hub: LocalHub = self.server.hub
        path = unquote(urlsplit(self.path).path)
        hub.requests.append((self.command, path))
        match = _RESOLVE.match(path)
        if match is None or match["repo"] not in hub.repos:
            self._reply(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        revisions = hub.repos[match["repo"]]
        if match["revision"] not in revisions:
            self._reply(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
            return
        commit, files = revisions[match["revision"]]
        data = files.get(match["path"])
        if data is None:
            self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                              "X-Repo-Commit": commit})
            return
        sha = hashlib.sha256(data).hexdigest()
        self._reply(302, {"Location": hub.storage_url(f"/blobs/{sha}"), "X-Repo-Commit": commit,
                          "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                          "ETag": f'"{hashlib.sha1(data).hexdigest()}"'})


class _StorageHandler(_Quiet):
    def do_GET(self):  # noqa: N802
        hub: LocalHub = self.server.hub
        path = urlsplit(self.path).path
        hub.requests.append(("GET", path))
        blobs = {hashlib.sha256(d).hexdigest(): d for rev in hub.repos.values() for _, f in rev.values()
                 for d in f.values()}
        data = blobs.get(path.removeprefix("/blobs/"))
        if data is None:
            self._reply(404, {})
            return
        self._reply(200, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data)


class LocalHub:
    """repos: "owner/name" -> {revision: (40-hex commit, {path in repo: bytes})}. requests: (method, path)
    of every request to either host, in order. `endpoint` is the value for HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, tuple[str, dict[str, bytes]]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._servers = []
        for handler in (_HubHandler, _StorageHandler):
            httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            httpd.hub = self
            threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(httpd)

    def add(self, repo: str, revision: str, files: dict[str, bytes]) -> str:
        """Publish `files` in `repo` at `revision`; returns the revision's commit hash."""
        commit = hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        self.repos.setdefault(repo, {})[revision] = (commit, files)
        return commit

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    def storage_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}{path}"

    def close(self) -> None:
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
