"""Helpers of the zero-copy strategy: a kernel clock read lazily from CUDA events, and a loader that samples and
gathers the next batches on a side stream in a background thread while the caller computes."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from kernels.base import LoadedBatch

__all__ = ["KernelClock", "SideStreamLoader"]


class KernelClock:
    """Seconds the gather kernel ran (CUDA events around each launch, read lazily) and the bytes it delivered."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.lock = threading.Lock()
        self.pending: list[tuple[Any, Any, int]] = []
        self.seconds, self.bytes, self.calls = 0.0, 0, 0

    @contextlib.contextmanager
    def timing(self, nbytes: int) -> Iterator[None]:
        if not self.cuda:
            t0 = time.perf_counter()
            yield
            with self.lock:
                self.seconds += time.perf_counter() - t0
                self.bytes, self.calls = self.bytes + nbytes, self.calls + 1
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        with self.lock:
            self.pending.append((start, end, nbytes))
            if len(self.pending) > 256:
                self._fold(block=False)

    def _fold(self, *, block: bool) -> None:
        keep = []
        for start, end, nbytes in self.pending:
            if block:
                end.synchronize()
            elif not end.query():
                keep.append((start, end, nbytes))
                continue
            self.seconds += start.elapsed_time(end) / 1e3
            self.bytes, self.calls = self.bytes + nbytes, self.calls + 1
        self.pending = keep

    def totals(self) -> tuple[float, int, int]:
        with self.lock:
            self._fold(block=True)
            return self.seconds, self.bytes, self.calls


class SideStreamLoader:
    """A background thread that samples and gathers the next batches on the strategy's side stream (``_side``).

    The strategy needs ``sample``, ``gather`` (each timing its own phase), ``collect_phases``, ``phase``, ``device``
    and ``_side`` (a CUDA stream, or None on the CPU). Batches come out in order, marked ``overlapped``; the
    consumer's stream waits for each batch's event and the tensors are recorded on it for the caching allocator.
    """

    _DONE = object()

    def __init__(self, s: Any, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int],
                 generator: torch.Generator, depth: int) -> None:
        self.s = s
        self.queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(iter(seed_batches), list(fanouts), generator),
                                       daemon=True, name="accessbench-zero-copy")
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stop_flag.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, seeds_iter: Iterator[torch.Tensor], fanouts: list[int], generator: torch.Generator) -> None:
        s = self.s
        cuda = s.device.type == "cuda"
        try:
            with contextlib.ExitStack() as stack:
                if cuda:
                    stack.enter_context(torch.cuda.device(s.device))
                    stack.enter_context(torch.cuda.stream(s._side))
                for seeds in seeds_iter:
                    if self.stop_flag.is_set():
                        return
                    with s.collect_phases() as phase_s:
                        with s.phase("sample"):
                            batch = s.sample(seeds, fanouts, generator=generator)
                        feats = s.gather(batch.node_ids)
                    ready = None
                    if cuda:
                        ready = torch.cuda.Event()
                        ready.record()
                    if not self._put((LoadedBatch(batch, feats, phase_s, overlapped=True), ready)):
                        return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer and raised there
            self._put(exc)

    def __iter__(self) -> Iterator[LoadedBatch]:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            loaded, ready = item  # type: ignore[misc]
            if ready is not None:
                main = torch.cuda.current_stream(self.s.device)
                main.wait_event(ready)
                # made on the side stream, used on this one: keep the allocator from reusing them too early
                for t in (loaded.features, loaded.batch.seeds, loaded.batch.node_ids,
                          *(b.edge_index for b in loaded.batch.blocks)):
                    t.record_stream(main)
            yield loaded

    def stop(self) -> None:
        self.stop_flag.set()
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=30)
