"""Helpers of the zero-copy strategy: a kernel clock read lazily from CUDA events, per-batch counters, and a loader
that samples and gathers the next batches on a side stream in a background thread while the caller computes.

Counters follow the batch, not the thread: what the background thread counts for a batch travels with it in a
``BatchCounts`` and is added to the strategy's counters only when the caller receives that batch, so a
``reset_stats()`` between two batches splits them exactly, however far ahead the thread has run."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from accessbench.kernels.base import LoadedBatch
from accessbench.kernels.prefetch import BatchProducer

__all__ = ["BatchCounts", "BatchLedger", "KernelClock", "SideStreamLoader"]


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

    def absorb(self, other: KernelClock) -> None:
        """Move ``other``'s launches (pending events and folded totals) into this clock; ``other`` is left empty."""
        with other.lock:
            pending, seconds, nbytes, calls = other.pending, other.seconds, other.bytes, other.calls
            other.pending, other.seconds, other.bytes, other.calls = [], 0.0, 0, 0
        with self.lock:
            self.pending += pending
            self.seconds, self.bytes, self.calls = self.seconds + seconds, self.bytes + nbytes, self.calls + calls
            if len(self.pending) > 256:
                self._fold(block=False)


class BatchCounts:
    """What serving one batch (or one call) moved: rows, bytes by tier, CSR payload bytes, the 32-byte-sector
    estimates of the feature rows and of the CSR reads (each a host int plus a device-side sum read only in
    ``stats``) and the kernel launches."""

    def __init__(self, cuda: bool) -> None:
        self.rows = 0
        self.bytes_needed = 0
        self.bytes: dict[str, int] = {}
        self.csr_bytes = 0
        self.sector_bytes_host = 0
        self.sector_bytes_dev: torch.Tensor | None = None
        self.csr_sector_bytes_host = 0
        self.csr_sector_bytes_dev: torch.Tensor | None = None
        self.clock = KernelClock(cuda)

    def count_rows(self, rows: int, row_bytes: int) -> None:
        """Count ``rows`` rows of ``row_bytes`` bytes requested by the caller."""
        self.rows += int(rows)
        self.bytes_needed += int(rows) * int(row_bytes)

    def add_bytes(self, tier: str, nbytes: int) -> None:
        """Count ``nbytes`` through ``tier``."""
        self.bytes[tier] = self.bytes.get(tier, 0) + int(nbytes)

    def add_sector_bytes(self, total: int | torch.Tensor) -> None:
        """Add a sector-byte count, a host int or a 0-d device tensor (summed on the device, no sync)."""
        if isinstance(total, torch.Tensor):
            self.sector_bytes_dev = total if self.sector_bytes_dev is None else self.sector_bytes_dev + total
        else:
            self.sector_bytes_host += int(total)

    def add_csr_sector_bytes(self, total: int | torch.Tensor) -> None:
        """Add to the CSR reads' sector estimate, a host int or a 0-d device tensor (no sync)."""
        if isinstance(total, torch.Tensor):
            dev = self.csr_sector_bytes_dev
            self.csr_sector_bytes_dev = total if dev is None else dev + total
        else:
            self.csr_sector_bytes_host += int(total)

    def absorb(self, other: BatchCounts) -> None:
        """Add ``other`` to these counters. A device-side sum is added on the current stream (which must already
        be ordered after the work that produced it) and recorded there for the caching allocator."""
        self.rows += other.rows
        self.bytes_needed += other.bytes_needed
        for tier, n in other.bytes.items():
            self.add_bytes(tier, n)
        self.csr_bytes += other.csr_bytes
        self.sector_bytes_host += other.sector_bytes_host
        self.sector_bytes_dev = _add_device_sum(self.sector_bytes_dev, other.sector_bytes_dev)
        self.csr_sector_bytes_host += other.csr_sector_bytes_host
        self.csr_sector_bytes_dev = _add_device_sum(self.csr_sector_bytes_dev, other.csr_sector_bytes_dev)
        self.clock.absorb(other.clock)

    def sector_bytes(self) -> int:
        """The feature rows' sector estimate as an int (reading a device-side sum syncs the current stream)."""
        dev = self.sector_bytes_dev
        return self.sector_bytes_host + (int(dev) if dev is not None else 0)

    def csr_sector_bytes(self) -> int:
        """The CSR reads' sector estimate as an int (reading a device-side sum syncs the current stream)."""
        dev = self.csr_sector_bytes_dev
        return self.csr_sector_bytes_host + (int(dev) if dev is not None else 0)


def _add_device_sum(mine: torch.Tensor | None, other: torch.Tensor | None) -> torch.Tensor | None:
    if other is None:
        return mine
    if other.is_cuda:  # summed on the stream that produced it; used on this one
        other.record_stream(torch.cuda.current_stream(other.device))
    return other.clone() if mine is None else mine + other


class BatchLedger:
    """A strategy's counters since the last ``reset``, fed one call or one batch at a time.

    ``counting()`` yields where one call counts: the current thread's ``collect()`` sink if it has one (a prefetch
    thread collects each batch's counters and they travel with the batch), else a fresh ``BatchCounts`` added to the
    totals when the call ends. ``apply`` adds a collected batch when the caller receives it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._tls = threading.local()
        self.cuda = False
        self.totals = BatchCounts(cuda=False)

    def reset(self, *, cuda: bool) -> None:
        """Zero the totals (kernel timing with CUDA events when ``cuda``)."""
        with self.lock:
            self.cuda = cuda
            self.totals = BatchCounts(cuda=cuda)

    @contextlib.contextmanager
    def collect(self) -> Iterator[BatchCounts]:
        """Catch the counts of the calls this thread makes inside the block in the yielded ``BatchCounts``."""
        previous = getattr(self._tls, "sink", None)
        sink = BatchCounts(cuda=self.cuda)
        self._tls.sink = sink
        try:
            yield sink
        finally:
            self._tls.sink = previous

    @contextlib.contextmanager
    def counting(self) -> Iterator[BatchCounts]:
        """Where one call counts (see the class)."""
        sink = getattr(self._tls, "sink", None)
        if sink is not None:
            yield sink
            return
        counts = BatchCounts(cuda=self.cuda)
        try:
            yield counts
        finally:
            self.apply(counts)

    def apply(self, counts: BatchCounts) -> None:
        """Add one call's or one batch's counts to the totals."""
        with self.lock:
            self.totals.absorb(counts)


class SideStreamLoader(BatchProducer):
    """A background thread that samples and gathers the next batches on the strategy's side stream (``_side``).

    The strategy needs ``sample``, ``gather`` (each timing its own phase and counting into ``counters``, a
    ``BatchLedger``), ``collect_phases``, ``phase``, ``device`` and ``_side`` (a CUDA stream, or None on the CPU).
    Batches come out in order, marked ``overlapped``; the consumer's stream waits for each batch's event, the tensors
    are recorded on it for the caching allocator, and then the batch's counters are added to the strategy's.
    ``stop`` waits for the thread: no launch of it may outlive the call (the caller may unregister the memory its
    kernels read next). The side stream waits for the caller's current stream before the thread starts.
    """

    def __init__(self, s: Any, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int],
                 generator: torch.Generator, depth: int) -> None:
        self.s = s
        stream = s._side if s.device.type == "cuda" else None
        if stream is not None:
            # before the thread starts: the side stream must see everything the caller queued so far (the pinned
            # tables' setup, seeds, the generator's state), or its first batch could read them half written
            stream.wait_stream(torch.cuda.current_stream(s.device))
        super().__init__(s.device, seed_batches, fanouts, generator, depth=depth, stream=stream,
                         name="accessbench-zero-copy")

    def produce(self, seeds: torch.Tensor, fanouts: list[int], generator: torch.Generator
                ) -> tuple[LoadedBatch, torch.cuda.Event | None, Any]:
        s = self.s
        with s.collect_phases() as phase_s, s.counters.collect() as counts:
            with s.phase("sample"):
                batch = s.sample(seeds, fanouts, generator=generator)
            with s.trusting_ids():
                feats = s.gather(batch.node_ids)
        ready = None
        if s.device.type == "cuda":
            ready = torch.cuda.Event()
            ready.record()
        return LoadedBatch(batch, feats, phase_s, overlapped=True), ready, counts

    def apply(self, counts: Any) -> None:
        self.s.counters.apply(counts)  # counted now, as the caller receives it (after the stream wait)
