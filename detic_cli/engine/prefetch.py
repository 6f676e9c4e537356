"""Run a producer a few items ahead of its consumer, on a background thread.

Used by `detect` so that reading, decoding and resizing the next frames overlaps the forward pass
of the current ones, and writing results overlaps the next forward pass.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["OrderedWorker", "prefetch"]

T = TypeVar("T")
_DONE = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield `items` in order while a thread computes up to `depth` of them ahead.

    An exception raised by the producer is raised here at the position it happened, after every item
    produced before it. Closing the returned generator early stops the producer at its next item.
    """
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Raised(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator releases what it holds (video captures) on this thread, now
        put(_DONE)

    worker = threading.Thread(target=produce, name="detic-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5.0)


class OrderedWorker(Generic[T]):
    """Calls `handle(item)` for submitted items one at a time, in submission order, on a thread.

    `submit` blocks while `depth` items wait. After `handle` raises, later items are dropped and the
    exception is raised again, once, by the next `submit` or by `close`. `close` waits for the rest.
    """

    def __init__(self, handle: Callable[[T], None], depth: int = 4) -> None:
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._work, name="detic-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._handle(item)
                except BaseException as exc:  # raised again in the submitting thread
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def submit(self, item: T) -> None:
        self._raise_error()
        self._queue.put(item)

    def close(self) -> None:
        """Wait until every submitted item is handled; raise the first error `handle` raised, if not yet."""
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()
        self._raise_error()
