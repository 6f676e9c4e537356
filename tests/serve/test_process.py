"""`detic serve` as a user starts it: the same detections as `detic detect --json` for a curl-style upload, and
SIGTERM drains the requests in flight before the process exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.conftest import SMALL, free_port


@pytest.fixture
def served(r18_files, tmp_path):
    """A `detic serve` process on a free loopback port (one request at a time); yields (process, base URL)."""
    config, weights, vocab = r18_files
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "detic_cli", "serve", "--config", str(config), "--weights",
                             str(weights), "--vocab", str(vocab), "--device", "cpu", "--port", str(port),
                             "--max-batch", "1", "--max-wait-ms", "0", *SMALL], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "DETIC_HOME": str(tmp_path / "home")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "detic serve did not come up"
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


@pytest.mark.slow
def test_serve_answers_like_detect_and_drains_on_sigterm(served, run_cli, r18_files, picture, tmp_path):
    proc, base = served
    config, weights, vocab = r18_files
    code, _, err = run_cli("detect", picture, "--config", config, "--weights", weights, "--vocab", vocab,
                           "--device", "cpu", "--json", tmp_path / "cli.json", *SMALL)
    assert code == 0, err
    cli = json.loads((tmp_path / "cli.json").read_text())[0]
    jpg = picture.read_bytes()
    with httpx.Client(base_url=base, timeout=120) as client:
        curl = client.post("/v1/detect", files={"image": ("astronaut.jpg", jpg)})  # curl -F image=@astronaut.jpg
        assert curl.status_code == 200 and curl.json()["instances"] == cli["instances"]

        with ThreadPoolExecutor(3) as pool:
            pending = [pool.submit(client.post, "/v1/detect", files={"image": ("a.jpg", jpg)}) for _ in range(3)]
            deadline = time.monotonic() + 60
            while client.get("/v1/metrics").json()["in_flight"] < 3:
                assert time.monotonic() < deadline, "the three requests never arrived"
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)  # while one runs and two wait for the model
            drained = [p.result() for p in pending]
    assert [r.status_code for r in drained] == [200, 200, 200]
    assert all(r.json()["instances"] == cli["instances"] for r in drained)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/v1/health", timeout=2)
