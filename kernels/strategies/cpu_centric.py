"""``cpu-centric``: the CPU samples and gathers into pinned staging, then a DMA copy moves rows to the GPU.

Done as well as the default PyTorch/DGL/PyG path does it: vectorised multi-threaded sampling and ``index_select``
(torch intra-op threads), a ring of reusable pinned staging buffers, the host-to-device copy on a side stream ordered
with events, and optional prefetch of the next batches in a background thread (the overlap that a DataLoader with
workers gives). On a CPU-only machine the compute device is the CPU: gather is ``index_select`` into the staging
ring (plain memory; a slot is reused only when no earlier result still views it) and there is no transfer phase
(records say ``device: cpu``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from accessbench.kernels.base import AccessStrategy, LoadedBatch, check_ids
from accessbench.kernels.device import cuda_available
from accessbench.kernels.errors import InvalidOptions, StrategyUnavailable
from accessbench.kernels.prefetch import BatchProducer
from accessbench.kernels.registry import register
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.types import AccessStats, GraphData, SampledBatch

__all__ = ["CpuCentric"]


@dataclass(frozen=True)
class CpuCentricOptions:
    """``threads``: torch intra-op threads for sampling and gathering (None: torch's default).
    ``prefetch``: batches sampled and gathered ahead in a background thread (0: none).
    ``staging``: ``pinned`` (page-locked, async DMA), ``pageable`` or ``auto`` (pinned when the device is CUDA).
    """

    threads: int | None = None
    prefetch: int = 0
    staging: Literal["auto", "pinned", "pageable"] = "auto"

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")
        if not 0 <= self.prefetch <= 64:
            raise ValueError("prefetch must be in [0, 64]")


def _storage_refs(t: torch.Tensor) -> int | None:
    """How many tensors share ``t``'s memory (None where torch cannot tell: then assume it is still in use)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return None
    return int(count(t.untyped_storage()._cdata)) - 1  # minus the temporary storage object of this call


def _index_select_checked(features: torch.Tensor, ids: torch.Tensor, out: torch.Tensor) -> None:
    """``index_select`` into ``out``, validating the range inside the gather itself: a separate min/max would add
    two passes, and with torch threads two more parallel regions, each of which waits for every thread to be
    scheduled (on shared cores that doubled the median gather). Out of range: ``check_ids``' error."""
    try:
        torch.index_select(features, 0, ids, out=out)
    except IndexError:
        check_ids(ids, features.shape[0])
        raise


class _Staging:
    """A ring of reusable host buffers; a slot is rewritten only after its last copy has finished.

    With ``handed_out`` (the CPU path, where the staged rows are the result) a slot is also rewritten only when no
    tensor from an earlier gather still views it; else that slot gets a new buffer. Reuse matters: a fresh result
    tensor costs a page fault per 4 KiB on first touch, which was two thirds of a gather of 100k rows.
    """

    #: Headroom over the warm-up's largest batch when the slots are sized before the measured window.
    HEADROOM = 1.25

    def __init__(self, slots: int, pinned: bool, *, handed_out: bool = False) -> None:
        self.pinned = pinned
        self.handed_out = handed_out
        self.buffers: list[torch.Tensor | None] = [None] * slots
        self.events: list[torch.cuda.Event | None] = [None] * slots
        self.next = 0
        self.lock = threading.Lock()
        self.peak_rows = 0  # the largest batch asked for so far
        self.shape: tuple[int, torch.dtype] | None = None  # (row width, dtype) of the last batch
        self.measuring = False
        self.reserved_rows = 0
        self.allocations_in_window = 0  # buffers allocated after ``reserve`` (a growth inside the measurement)
        self.bytes_allocated_in_window = 0

    def reserve(self, headroom: float = HEADROOM) -> int:
        """Size every slot for the largest batch seen so far (the warm-up's) times ``headroom``, before the measured
        window, so no allocation (a pinned one can take hundreds of ms) lands in a measured step. Returns rows."""
        if self.shape is None or self.peak_rows == 0:
            return 0
        dim, dtype = self.shape
        rows = int(self.peak_rows * headroom) + 1
        for slot, buf in enumerate(self.buffers):
            if buf is None or buf.shape[0] < rows or buf.shape[1] != dim or buf.dtype != dtype:
                if self.events[slot] is not None:
                    self.events[slot].synchronize()
                self.buffers[slot] = torch.empty((rows, dim), dtype=dtype, pin_memory=self.pinned)
        self.measuring = True
        self.reserved_rows = rows
        self.allocations_in_window = self.bytes_allocated_in_window = 0
        return rows

    def acquire(self, rows: int, dim: int, dtype: torch.dtype) -> tuple[int, torch.Tensor]:
        with self.lock:
            slot = self.next
            self.next = (self.next + 1) % len(self.buffers)
        event = self.events[slot]
        if event is not None:
            event.synchronize()  # the previous copy out of this slot is done
        buf = self.buffers[slot]
        self.peak_rows = max(self.peak_rows, rows)
        self.shape = (dim, dtype)
        if buf is not None and self.handed_out and _storage_refs(buf) != 1:
            buf = None  # an earlier result still views it: leave it to its holder
        if buf is None or buf.shape[0] < rows or buf.shape[1] != dim or buf.dtype != dtype:
            capacity = max(rows, 2 * buf.shape[0] if buf is not None and buf.shape[1] == dim else rows, 1)
            buf = torch.empty((capacity, dim), dtype=dtype, pin_memory=self.pinned)
            self.buffers[slot] = buf
            if self.measuring:
                self.allocations_in_window += 1
                self.bytes_allocated_in_window += buf.numel() * buf.element_size()
        return slot, buf[:rows]


def split_threads(total: int) -> tuple[int, int]:
    """Intra-op threads for (the prefetch thread, the consumer) out of ``total``, so the two together do not ask
    for more threads than ``total`` (at least one each: with ``total == 1`` the two share the core)."""
    producer = max(1, total // 2)
    return producer, max(1, total - producer)


@register("cpu-centric")
class CpuCentric(AccessStrategy):
    """CPU sampling and gathering, staged host-to-device copy (the field's default data path)."""

    Options = CpuCentricOptions
    samples_on_host = True

    def __init__(self, options: CpuCentricOptions | None = None) -> None:
        super().__init__(options)
        self._staging: _Staging | None = None
        self._copy_stream: torch.cuda.Stream | None = None
        self._saved_threads: int | None = None
        self._workers: list[_Prefetcher] = []
        self._thread_note: str | None = None

    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Keep everything in host memory; set up staging buffers and a copy stream when the device is CUDA."""
        opts: CpuCentricOptions = self.options
        if device.type == "cuda" and not cuda_available():
            raise StrategyUnavailable("cpu-centric: CUDA device requested but torch sees none")
        pinned = opts.staging == "pinned" or (opts.staging == "auto" and device.type == "cuda")
        if pinned and not cuda_available():
            raise InvalidOptions("cpu-centric: staging=pinned needs CUDA to page-lock memory; use staging=pageable")
        if graph.features.device.type != "cpu":
            raise ValueError("cpu-centric expects the graph in host memory")
        self.graph = graph
        self.device = device
        if opts.threads is not None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(opts.threads)
        if device.type == "cuda":
            self._staging = _Staging(slots=opts.prefetch + 2, pinned=pinned)
            self._copy_stream = torch.cuda.Stream(device)
        else:  # the staged rows are the result: reuse a slot once its last result is dropped
            self._staging = _Staging(slots=opts.prefetch + 2, pinned=False, handed_out=True)

    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """Vectorised uniform sampling on the CPU over the host CSR; the batch lives in host memory."""
        g = self._require_prepared()
        seeds = check_ids(seeds.cpu(), g.num_nodes)
        return sample_blocks(g.indptr, g.indices, seeds, fanouts, generator)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """``index_select`` on the CPU, then (CUDA) a DMA copy from pinned staging; exact, caller's order."""
        feats, event = self._gather_async(ids)
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        return feats

    def _gather_async(self, ids: torch.Tensor, stats: AccessStats | None = None
                      ) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """Gather (and on CUDA start the copy of) ``ids``; counters go to ``stats`` (default: the strategy's)."""
        g = self._require_prepared()
        st = stats if stats is not None else self._stats
        dim = g.feat_dim
        if self.device.type != "cuda":
            assert self._staging is not None
            with self.phase("gather"):
                ids = ids.cpu()
                check_ids(ids[:0], g.num_nodes)  # shape and type only; index_select checks the range
                n = ids.numel()
                _, out = self._staging.acquire(n, dim, g.dtype)
                _index_select_checked(g.features, ids, out)
            st.count_rows(n, g.row_bytes)
            st.add_bytes("host", 2 * n * g.row_bytes)  # read the table, write the result
            return out, None
        assert self._staging is not None and self._copy_stream is not None
        with self.phase("gather"):
            ids = check_ids(ids.cpu(), g.num_nodes)
            n = ids.numel()
            slot, staged = self._staging.acquire(n, dim, g.dtype)
            torch.index_select(g.features, 0, ids, out=staged)
        nbytes = n * g.row_bytes
        st.count_rows(n, g.row_bytes)
        with self.phase("transfer"):
            out = torch.empty((n, dim), dtype=g.dtype, device=self.device)
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(self.device))  # `out` is allocated before the copy starts
            with torch.cuda.stream(self._copy_stream):
                self._copy_stream.wait_event(ready)
                out.copy_(staged, non_blocking=self._staging.pinned)
                done = torch.cuda.Event()
                done.record(self._copy_stream)
            out.record_stream(self._copy_stream)
            self._staging.events[slot] = done
            torch.cuda.current_stream(self.device).wait_event(done)
        # host traffic: read the table, write staging, DMA read of staging
        st.add_bytes("host", 3 * nbytes)
        st.add_bytes("h2d", nbytes)
        return out, done

    def load(
        self, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int], *, generator: torch.Generator
    ) -> Iterator[LoadedBatch]:
        """Sequential when ``prefetch == 0``; else a background thread keeps ``prefetch`` batches ready."""
        if self.options.prefetch == 0:
            yield from super().load(seed_batches, fanouts, generator=generator)
            return
        total = torch.get_num_threads()
        producer, consumer = split_threads(total)
        worker = _Prefetcher(self, seed_batches, fanouts, generator, depth=self.options.prefetch, threads=producer)
        self._workers.append(worker)
        self._thread_note = (f"prefetch: the background thread samples and gathers with {producer} intra-op "
                             f"thread(s), the consumer computes with {consumer} (of {total})")
        torch.set_num_threads(consumer)
        try:
            yield from worker
        finally:
            worker.stop()
            self._workers.remove(worker)
            torch.set_num_threads(total)

    def before_measure(self) -> None:
        """Size every staging slot for the warm-up's largest batch (with headroom) before the measured window."""
        if self._staging is not None:
            self._staging.reserve()

    def measure_notes(self) -> list[str]:
        notes = [self._thread_note] if self._thread_note else []
        st = self._staging
        if st is None or not st.allocations_in_window:
            return notes
        growth = (f"cpu-centric allocated {st.allocations_in_window} staging buffer(s) "
                  f"({st.bytes_allocated_in_window} bytes{', pinned' if st.pinned else ''}) inside the measured "
                  f"window: a batch outgrew the {st.reserved_rows} rows reserved from the warm-up's largest, or a "
                  "result was still held")
        return [*notes, growth]

    def close(self) -> None:
        """Stop prefetch threads, drop staging buffers, restore the thread count."""
        for worker in list(self._workers):
            worker.stop()
        self._workers.clear()
        self._staging = None
        self._copy_stream = None
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None
        super().close()


class _Prefetcher(BatchProducer):
    """Samples and gathers batches in a background thread on the copy stream, ``prefetch`` batches ahead."""

    def __init__(self, strategy: CpuCentric, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int],
                 generator: torch.Generator, depth: int, threads: int) -> None:
        self.strategy = strategy
        # OpenMP thread counts are per calling thread: without this the prefetch thread would run torch's default
        # (all cores) next to the consumer's threads and oversubscribe the cores.
        self.threads = threads
        self._threads_set = False
        super().__init__(strategy.device, seed_batches, fanouts, generator, depth=depth,
                         stream=strategy._copy_stream, name="accessbench-prefetch")

    def produce(self, seeds: torch.Tensor, fanouts: list[int], generator: torch.Generator
                ) -> tuple[LoadedBatch, torch.cuda.Event | None, AccessStats]:
        s = self.strategy
        if not self._threads_set:  # runs in the prefetch thread: the same intra-op budget as the strategy's
            torch.set_num_threads(self.threads)
            self._threads_set = True
        delta = AccessStats()  # this batch's counters, applied when the consumer takes it
        with s.collect_phases() as phase_s:
            with s.phase("sample"):
                batch = s.sample(seeds, fanouts, generator=generator)
            feats, event = s._gather_async(batch.node_ids, delta)
            batch = s.blocks_to_device(batch, stats=delta)
        return LoadedBatch(batch, feats, phase_s, overlapped=True), event, delta

    def apply(self, counts: AccessStats) -> None:
        self.strategy._stats.merge(counts)
