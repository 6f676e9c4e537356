"""prefetch (producer a few items ahead, on a thread) and OrderedWorker (in-order handling on a thread)."""

from __future__ import annotations

import threading
import time

import pytest

from detic_cli.engine.prefetch import OrderedWorker, prefetch


def test_prefetch_yields_every_item_in_order():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetch([], depth=2)) == []


def test_prefetch_runs_the_producer_on_another_thread_ahead_of_the_consumer():
    threads, produced = set(), []

    def produce():
        for i in range(5):
            threads.add(threading.get_ident())
            produced.append(i)
            yield i

    ahead = prefetch(produce(), depth=2)
    assert next(ahead) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(produced) >= 3  # items 1 and 2 were made while the consumer held item 0
    assert list(ahead) == [1, 2, 3, 4]
    assert threads and threading.get_ident() not in threads


def test_prefetch_raises_the_producer_error_after_the_items_before_it():
    def produce():
        yield "a"
        yield "b"
        raise ValueError("frame 3 is corrupt")

    got = []
    with pytest.raises(ValueError, match="frame 3 is corrupt"):
        for item in prefetch(produce(), depth=4):
            got.append(item)
    assert got == ["a", "b"]


def test_closing_prefetch_early_stops_the_producer():
    produced = []

    def produce():
        for i in range(10_000):
            produced.append(i)
            yield i

    ahead = prefetch(produce(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 3 + 2 + 1


def test_ordered_worker_handles_items_in_order_and_close_waits():
    handled, threads = [], set()

    def handle(item: int) -> None:
        time.sleep(0.001 * (item % 3))
        threads.add(threading.get_ident())
        handled.append(item)

    worker: OrderedWorker[int] = OrderedWorker(handle, depth=2)
    for i in range(20):
        worker.submit(i)
    worker.close()
    assert handled == list(range(20))
    assert threading.get_ident() not in threads


def test_ordered_worker_error_is_raised_once_and_later_items_are_dropped():
    handled = []

    def handle(item: int) -> None:
        if item == 2:
            raise OSError("disk full")
        handled.append(item)

    worker: OrderedWorker[int] = OrderedWorker(handle, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            worker.submit(i)
            time.sleep(0.005)
    worker.submit(1000)  # reported already: not raised again, and not handled
    worker.close()
    assert handled == [0, 1]
