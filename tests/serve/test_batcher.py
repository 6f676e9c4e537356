"""The dynamic batcher alone (no model): grouping by key, the size cap, the wait, the queue cap, failures, close."""

from __future__ import annotations

import threading
import time

import pytest

from detic_cli.serve.batcher import Batcher, QueueFull


def _recording(gate: threading.Event | None = None):
    batches: list[list] = []

    def run(payloads):
        if gate is not None:
            gate.wait(10)
        batches.append(list(payloads))
        return [p * 10 for p in payloads]

    return batches, run


def test_jobs_with_one_key_share_a_batch_up_to_the_cap_and_others_keep_their_turn():
    batches, run = _recording()
    batcher = Batcher(run, max_batch=3, max_wait_s=0.3, max_queue=16)
    jobs = [batcher.submit(key, n) for n, key in enumerate("aabaab")]  # a: 0 1 3 4, b: 2 5
    results = [j.future.result(10) for j in jobs]
    batcher.close()
    assert results == [0, 10, 20, 30, 40, 50]
    assert batches == [[0, 1, 3], [2, 5], [4]]  # a fills its batch at once; b and the last a wait out max_wait
    assert batcher.snapshot()["batch_sizes"] == {"1": 1, "2": 1, "3": 1}


def test_a_lone_job_runs_after_max_wait():
    batches, run = _recording()
    batcher = Batcher(run, max_batch=8, max_wait_s=0.05, max_queue=4)
    assert batcher.submit("k", 1).future.result(5) == 10
    batcher.close()
    assert batches == [[1]]


def test_the_queue_cap_refuses_and_a_failing_batch_fails_only_its_jobs():
    gate = threading.Event()
    batches, run = _recording(gate)
    calls = {"n": 0}

    def flaky(payloads):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return run(payloads)

    batcher = Batcher(flaky, max_batch=1, max_wait_s=0.0, max_queue=1)
    first = batcher.submit("k", 1)
    while not batcher.snapshot()["running"]:
        time.sleep(0.005)
    second = batcher.submit("k", 2)  # waits: the queue is now full
    with pytest.raises(QueueFull):
        batcher.submit("k", 3)
    gate.set()
    assert first.future.result(5) == 10
    with pytest.raises(RuntimeError, match="boom"):
        second.future.result(5)
    assert batcher.submit("k", 4).future.result(5) == 40  # the worker goes on
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit("k", 5)


def test_close_runs_what_is_queued():
    batches, run = _recording()
    batcher = Batcher(run, max_batch=4, max_wait_s=60.0, max_queue=8)
    jobs = [batcher.submit("k", n) for n in range(2)]
    batcher.close(timeout=10)
    assert [j.future.result(0) for j in jobs] == [0, 10] and batches == [[0, 1]]
