"""A background thread that prepares the next batches into a bounded queue, shared by the prefetching strategies.

Subclasses say how one batch is made (``produce``, in the thread, on the strategy's side stream) and how its
counters join the strategy's (``apply``, when the consumer takes the batch: after ``reset_stats`` the counters cover
exactly the batches handed out since). Batches come out in order; an exception in the thread is raised in the
consumer; ``stop`` ends the thread within one batch and waits for it.
"""

from __future__ import annotations

import abc
import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from .base import LoadedBatch

__all__ = ["BatchProducer"]


class BatchProducer(abc.ABC):
    """Make batches ``depth`` ahead of the consumer in a daemon thread (``name``), on ``stream`` when given."""

    _DONE = object()

    def __init__(self, device: torch.device, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int],
                 generator: torch.Generator, *, depth: int, stream: torch.cuda.Stream | None, name: str) -> None:
        self.device = device
        self.stream = stream
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(iter(seed_batches), list(fanouts), generator),
                                       daemon=True, name=name)
        self.thread.start()

    @abc.abstractmethod
    def produce(self, seeds: torch.Tensor, fanouts: list[int], generator: torch.Generator
                ) -> tuple[LoadedBatch, torch.cuda.Event | None, Any]:
        """One batch, the event its tensors are ready at (None on the CPU), and its counters (for ``apply``)."""

    @abc.abstractmethod
    def apply(self, counts: Any) -> None:
        """Add a batch's counters to the strategy's, as the consumer receives the batch."""

    def _put(self, item: object) -> bool:
        while not self.stop_flag.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, seeds_iter: Iterator[torch.Tensor], fanouts: list[int], generator: torch.Generator) -> None:
        try:
            with contextlib.ExitStack() as stack:
                if self.stream is not None:
                    stack.enter_context(torch.cuda.device(self.device))
                    stack.enter_context(torch.cuda.stream(self.stream))
                for seeds in seeds_iter:
                    if self.stop_flag.is_set():
                        return
                    if not self._put(self.produce(seeds, fanouts, generator)):
                        return
            self._put(self._DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer and raised there
            self._put(exc)

    def __iter__(self) -> Iterator[LoadedBatch]:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            loaded, ready, counts = item  # type: ignore[misc]
            if ready is not None:
                main = torch.cuda.current_stream(self.device)
                main.wait_event(ready)
                # made on the side stream, used on this one: keep the allocator from reusing them too early
                for t in (loaded.features, loaded.batch.seeds, loaded.batch.node_ids,
                          *(b.edge_index for b in loaded.batch.blocks)):
                    t.record_stream(main)
            self.apply(counts)
            yield loaded

    def stop(self) -> None:
        """Stop the thread and wait for it (it checks the flag between batches, so within one batch's work)."""
        self.stop_flag.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join()
