"""Dynamic batching: requests that can share a forward pass are run as one.

Jobs wait in one queue. A worker thread takes the oldest job, then waits until `max_batch` jobs with
the same key (vocabulary and network-input size) are queued or `max_wait` has passed since that job
arrived, and runs those jobs together; jobs with other keys keep their place for the next rounds.
`run` gets the payloads of one batch and returns one result each, in order; its exception fails
every job of that batch (and only them). The queue holds at most `max_queue` waiting jobs; `submit`
refuses more with `QueueFull`."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The queue already holds `max_queue` waiting jobs."""


@dataclass(eq=False)
class Job:
    """key: jobs with equal keys may share a batch; payload: what `run` gets; future: its result;
    enqueued/started: time.monotonic() stamps (queue time = started - enqueued); batch: its batch size."""

    key: Hashable
    payload: Any
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0
    batch: int = 0


class Batcher:
    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], *, max_batch: int = 8, max_wait_s: float = 0.01,
                 max_queue: int = 64) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_s >= 0")
        self._run = run
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self._pending: list[Job] = []
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self.batch_sizes: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._loop, name="detic-batcher", daemon=True)
        self._thread.start()

    def full(self) -> bool:
        with self._cond:
            return len(self._pending) >= self.max_queue

    def submit(self, key: Hashable, payload: Any) -> Job:
        """Queue one job; its `future` gets the result. Raises QueueFull, or RuntimeError once closed."""
        job = Job(key, payload)
        with self._cond:
            if self._closing:
                raise RuntimeError("the batcher is closed")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"{len(self._pending)} requests are already waiting")
            self._pending.append(job)
            self._cond.notify_all()
        return job

    def close(self, timeout: float | None = None) -> None:
        """Run every job already queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def snapshot(self) -> dict:
        with self._cond:
            return {"waiting": len(self._pending), "running": self._busy, "max_queue": self.max_queue,
                    "max_batch": self.max_batch, "max_wait_ms": self.max_wait_s * 1000,
                    "batches": sum(self.batch_sizes.values()),
                    "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[Job] | None:
        """The next jobs to run together (None once closed and empty)."""
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            first = self._pending[0]
            deadline = first.enqueued + self.max_wait_s
            while not self._closing and self._count(first.key) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch = [j for j in self._pending if j.key == first.key][: self.max_batch]
            taken = set(map(id, batch))
            self._pending = [j for j in self._pending if id(j) not in taken]
            self._busy = True
            self.batch_sizes[len(batch)] += 1
            return batch

    def _count(self, key: Hashable) -> int:
        return sum(1 for j in self._pending if j.key == key)

    def _execute(self, batch: list[Job]) -> None:
        now = time.monotonic()
        for job in batch:
            job.started, job.batch = now, len(batch)
        try:
            results = list(self._run([j.payload for j in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:  # the batch fails; the worker goes on
            for job in batch:
                job.future.set_exception(exc)
        else:
            for job, result in zip(batch, results):
                job.future.set_result(result)
        finally:
            with self._cond:
                self._busy = False
