"""The dynamic batcher behind a real uvicorn: shared forward passes per vocabulary, a full queue, a failing model."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from detic_cli.serve.runner import ModelRunner
from detic_cli.vocab import cache
from tests.serve.conftest import instances_equal, live_server


def _plant_vocabulary(vocab_npy) -> str:
    """A second vocabulary (the first 50 LVIS rows, other names) in the on-disk cache; its id."""
    names = [f"thing_{i}" for i in range(50)]
    key = cache.cache_key(names, "a {}", "test-encoder")
    cache.store_cached(key, np.load(vocab_npy)[:50].astype(np.float32), {"names": names})
    return key


def _post_all(client, jpg: bytes, params: list[dict]) -> list:
    with ThreadPoolExecutor(len(params)) as pool:
        return list(pool.map(lambda p: client.post("/v1/detect", params=p, files={"image": ("a.jpg", jpg)}),
                             params))


def test_concurrent_requests_are_batched_per_vocabulary(make_service, r18_files, astronaut_jpg):
    other = _plant_vocabulary(r18_files[2])
    params = [{}, {"vocab_id": other}, {}, {"vocab_id": other}]
    with live_server(make_service(max_batch=2, max_wait_ms=10_000)) as client:
        batched = _post_all(client, astronaut_jpg, params)
        metrics = client.get("/v1/metrics").json()
    with live_server(make_service(max_batch=1, max_wait_ms=0)) as client:
        alone = [client.post("/v1/detect", params=p, files={"image": ("a.jpg", astronaut_jpg)}) for p in params[:2]]
    assert all(r.status_code == 200 for r in batched + alone)
    assert alone[0].json()["instances"] and alone[1].json()["instances"]
    assert metrics["batcher"]["batch_sizes"] == {"2": 2}  # two forward passes of two, one per vocabulary
    assert all(r.json()["timing_ms"]["batch_size"] == 2 for r in batched)
    for response, params_used in zip(batched, params):
        reference = alone[0 if not params_used else 1].json()
        # the same detections; batched convolutions round differently in float32 (1e-4 px), as `detect --batch-size`
        assert instances_equal(response.json()["instances"], reference["instances"])
        assert response.json()["vocab_sha256"] == reference["vocab_sha256"]
    assert {i["class_name"] for i in alone[1].json()["instances"]} <= {f"thing_{i}" for i in range(50)}
    assert alone[1].json()["vocab_sha256"] == other != alone[0].json()["vocab_sha256"]


class _Wrapped:
    """A runner that runs the real one after `before()` (a gate, a fault)."""

    batch_key = staticmethod(ModelRunner.batch_key)

    def __init__(self, inner: ModelRunner, before) -> None:
        self.inner, self.before = inner, before

    def prepare(self, image):
        return self.inner.prepare(image)

    def run(self, payloads):
        self.before()
        return self.inner.run(payloads)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_queue_answers_503_with_retry_after(make_service, small_base, astronaut_jpg):
    entered, gate = threading.Event(), threading.Event()
    runner = _Wrapped(small_base.runner, lambda: (entered.set(), gate.wait(60)))
    service = make_service(runner=runner, max_batch=1, max_wait_ms=0, max_queue=1)
    with live_server(service) as client, ThreadPoolExecutor(2) as pool:
        post = lambda: client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)})  # noqa: E731
        first = pool.submit(post)
        _wait_for(entered.is_set)  # the first request holds the model
        second = pool.submit(post)
        _wait_for(lambda: client.get("/v1/metrics").json()["batcher"]["waiting"] == 1)
        refused = post()
        gate.set()
        answered = [first.result(), second.result()]
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "busy"
    assert [r.status_code for r in answered] == [200, 200]


def test_a_model_error_answers_500_and_the_server_keeps_serving(make_service, small_base, astronaut_jpg):
    calls = []

    def fail_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")

    service = make_service(runner=_Wrapped(small_base.runner, fail_once), max_wait_ms=0)
    with live_server(service) as client:
        failed = client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)})
        after = client.post("/v1/detect", files={"image": ("a.jpg", astronaut_jpg)})
        metrics = client.get("/v1/metrics").json()
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "model_error"
    assert "out of memory" in failed.json()["error"]["message"]
    assert after.status_code == 200 and after.json()["instances"]
    assert metrics["model_errors"] == 1 and metrics["responses"]["500"] == 1
