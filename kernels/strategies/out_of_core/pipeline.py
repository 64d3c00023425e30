"""Threads joined by bounded queues: a producer (plan, read from disk, assemble on the host) feeds zero or more
stages (the host-to-device copy), and the consumer (compute) takes results in order. With depth-2 queues, disk reads
of batch i+2, the copy of batch i+1 and compute on batch i overlap."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Pipeline"]

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Pipeline:
    """Run ``source`` in a thread and each of ``stages`` in its own thread; iterate to get the results in order.

    ``wrap(i)`` (optional) returns a context manager entered around stage ``i``'s whole thread (stage 0 is the
    source), e.g. to set a CUDA stream. An exception in any thread is re-raised in the consumer. ``close()`` stops
    every thread (also when the consumer stops early).
    """

    def __init__(self, source: Iterator[Any], stages: list[Callable[[Any], Any]], *, depth: int = 2,
                 wrap: Callable[[int], Any] | None = None, name: str = "accessbench-ooc") -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._stop = threading.Event()
        self._queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]
        self._wrap = wrap
        self._threads = [threading.Thread(target=self._run_source, args=(source,), daemon=True, name=f"{name}-0")]
        for i, fn in enumerate(stages, start=1):
            self._threads.append(threading.Thread(target=self._run_stage, args=(i, fn), daemon=True, name=f"{name}-{i}"))
        for t in self._threads:
            t.start()

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        return _DONE

    def _context(self, i: int) -> Any:
        import contextlib

        return self._wrap(i) if self._wrap is not None else contextlib.nullcontext()

    def _run_source(self, source: Iterator[Any]) -> None:
        out = self._queues[0]
        try:
            with self._context(0):
                for item in source:
                    if not self._put(out, item):
                        return
            self._put(out, _DONE)
        except BaseException as exc:  # handed to the consumer
            self._put(out, _Failure(exc))

    def _run_stage(self, i: int, fn: Callable[[Any], Any]) -> None:
        inq, out = self._queues[i - 1], self._queues[i]
        try:
            with self._context(i):
                while True:
                    item = self._get(inq)
                    if item is _DONE or isinstance(item, _Failure):
                        self._put(out, item)
                        return
                    if not self._put(out, fn(item)):
                        return
        except BaseException as exc:
            self._put(out, _Failure(exc))

    def __iter__(self) -> Iterator[Any]:
        last = self._queues[-1]
        while True:
            item = self._get(last)
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        """Stop all threads and wait for them (no timeout: a thread stops after the item it is working on, and the
        caller may close the files it reads only once it has). Safe to call twice."""
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join()
