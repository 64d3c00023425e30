"""Where feature rows come from: the store read row by row (``RowSource``) or a packed file read a batch segment at a
time (``SegmentSource``), through one of the I/O paths (``direct``, ``mmap``, ``kvikio``), with timing and counters."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Literal, Union

import torch

from .align import PAGE, aligned_empty
from .counters import IoCounter
from .direct import DirectFile
from .extents import ReadPlan, plan_row_reads, plan_span_reads, rows_from_buffer
from .kvikio_io import KvikioFile
from .mmapio import Advice, MmapFile
from .packed import PackedIndex

__all__ = ["IO_KINDS", "AnyFile", "IoKind", "RowSource", "SegmentSource", "open_file"]

IoKind = Literal["direct", "mmap", "kvikio"]
IO_KINDS: tuple[str, ...] = ("direct", "mmap", "kvikio")
AnyFile = Union[DirectFile, MmapFile, KvikioFile]


def open_file(path: str | os.PathLike[str], io: str, *, depth: int = 32, advice: Advice = "normal",
              kvikio_compat: bool = False) -> AnyFile:
    """Open ``path`` for the given I/O path (raises ``StrategyUnavailable`` where it cannot run)."""
    if io == "direct":
        return DirectFile(path, depth=depth)
    if io == "mmap":
        return MmapFile(path, advice=advice)
    if io == "kvikio":
        return KvikioFile(path, allow_compat=kvikio_compat)
    raise ValueError(f"io={io!r}; valid: {', '.join(IO_KINDS)}")


class _Timed:
    """Seconds spent in reads, and a grow-only read buffer (host aligned, or device for kvikio).

    A device buffer is filled by kvikio/cuFile, which is not ordered with torch streams, while the kernels that copy
    rows out of it are queued on a stream. So every use of the buffer ends with ``_consumed()`` (an event recorded
    after the kernels that read it), and the buffer is written again, replaced or dropped only after that event.
    Host buffers are read by synchronous CPU copies and need no event.
    """

    def __init__(self, file: AnyFile, device: torch.device) -> None:
        self.file = file
        self.read_s = 0.0
        self.buffer_device = device if isinstance(file, KvikioFile) else torch.device("cpu")
        self._buf: torch.Tensor | None = None
        self._free: torch.cuda.Event | None = None  # recorded after the last kernels that read the device buffer

    @property
    def counter(self) -> IoCounter:
        return self.file.counter

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by the reusable read buffer."""
        return 0 if self._buf is None else int(self._buf.numel())

    def _consumed(self) -> None:
        """Mark the device buffer's readers as queued: record an event after them on the current stream."""
        if self._buf is not None and self._buf.is_cuda:
            self._free = torch.cuda.Event()
            self._free.record(torch.cuda.current_stream(self._buf.device))

    def _wait_free(self) -> None:
        """Block until the kernels that read the device buffer have finished (no-op for host buffers)."""
        if self._free is not None:
            self._free.synchronize()
            self._free = None

    def _buffer(self, nbytes: int) -> torch.Tensor:
        if self._buf is None or self._buf.numel() < nbytes:
            grow = max(nbytes, int(1.25 * self.buffer_bytes))
            self._wait_free()  # the old buffer's memory may go straight back to the allocator
            self._buf = None
            if self.buffer_device.type == "cuda":
                self._buf = torch.empty(grow, dtype=torch.uint8, device=self.buffer_device)
                # the allocator may hand out memory whose last readers are still queued on this stream; cuFile
                # writes outside stream order, so let them finish before the first read lands there
                torch.cuda.current_stream(self.buffer_device).synchronize()
            else:
                self._buf = aligned_empty(grow)
        return self._buf

    def _read(self, plan: ReadPlan) -> torch.Tensor:
        buf = self._buffer(plan.total_bytes)
        self._wait_free()  # the previous chunk's or batch's copies out of ``buf`` must be done before it is refilled
        start = time.perf_counter()
        self.file.read(plan, buf)  # type: ignore[union-attr]
        if buf.device.type == "cuda":
            torch.cuda.current_stream(buf.device).synchronize()
        self.read_s += time.perf_counter() - start
        return buf

    def release(self) -> None:
        """Drop the read buffer (once the kernels reading it have finished)."""
        self._wait_free()
        self._buf = None

    def close(self) -> None:
        """Close the file and drop the buffer."""
        self.release()
        self.file.close()


class RowSource(_Timed):
    """Rows of the store's feature file, read by id with page-aligned coalesced reads (mmap: ``index_select``)."""

    def __init__(self, file: AnyFile, *, path: Path, offset: int, row_stride: int, row_bytes: int,
                 dtype: torch.dtype, feat_dim: int, max_io_bytes: int, device: torch.device) -> None:
        super().__init__(file, device)
        self.path, self.offset, self.row_stride, self.row_bytes = path, offset, row_stride, row_bytes
        self.dtype, self.feat_dim, self.max_io_bytes = dtype, feat_dim, max_io_bytes

    def plan(self, ids: torch.Tensor) -> ReadPlan:
        """The page-aligned reads covering ``ids``."""
        return plan_row_reads(ids, offset=self.offset, row_stride=self.row_stride, row_bytes=self.row_bytes,
                              max_io_bytes=self.max_io_bytes)

    def rows(self, ids: torch.Tensor, *, buffer_bytes: int = 64 << 20) -> torch.Tensor:
        """Rows ``ids`` (int64 CPU ``[n]``, unique) as a new ``[n, D]`` tensor in ``ids`` order (host; device memory
        for kvikio). Reads go in file order, in chunks whose read buffer stays within ``buffer_bytes``."""
        if ids.numel() == 0:
            return torch.empty((0, self.feat_dim), dtype=self.dtype, device=self.buffer_device)
        if isinstance(self.file, MmapFile):
            return self._mmap_rows(ids)
        order = torch.argsort(ids)
        sorted_ids = ids[order]
        out = torch.empty((ids.numel(), self.feat_dim), dtype=self.dtype, device=self.buffer_device)
        for lo, hi in self._chunks(sorted_ids, buffer_bytes):
            plan = self.plan(sorted_ids[lo:hi])
            buf = self._read(plan)
            out[order[lo:hi].to(out.device)] = rows_from_buffer(buf, plan.row_pos, self.row_bytes, self.dtype)
            self._consumed()
        return out

    def _chunks(self, sorted_ids: torch.Tensor, buffer_bytes: int) -> list[tuple[int, int]]:
        """Split sorted rows so each chunk's pages fit ``buffer_bytes`` and no page is shared by two chunks."""
        n = sorted_ids.numel()
        start = self.offset + sorted_ids * self.row_stride
        first, last = start // PAGE, (start + self.row_bytes - 1) // PAGE
        per_row = int((last - first).max()) + 1
        step = max(1, buffer_bytes // (per_row * PAGE))
        if n <= step:
            return [(0, n)]
        bounds, lo = [], 0
        first_l, last_l = first.tolist(), last.tolist()
        while lo < n:
            hi = min(n, lo + step)
            while hi < n and first_l[hi] <= last_l[hi - 1]:
                hi += 1  # keep rows sharing a page in one chunk
            bounds.append((lo, hi))
            lo = hi
        return bounds

    def _mmap_rows(self, ids: torch.Tensor) -> torch.Tensor:
        assert isinstance(self.file, MmapFile)
        start_b = self.offset + ids * self.row_stride
        pages = torch.unique(torch.cat([start_b // PAGE, (start_b + self.row_bytes - 1) // PAGE]))
        missing = self.file.not_resident(pages)
        start = time.perf_counter()
        out = self.file.rows(ids, offset=self.offset, row_stride=self.row_stride, row_bytes=self.row_bytes,
                             dtype=self.dtype)
        self.read_s += time.perf_counter() - start
        if missing >= 0:
            self.file.counter.add(missing * PAGE, 0)
        return out


class SegmentSource(_Timed):
    """Batch segments of a packed file: one span read per batch, checked against its CRC before use."""

    def __init__(self, file: AnyFile, index: PackedIndex, *, dtype: torch.dtype, feat_dim: int, max_io_bytes: int,
                 device: torch.device, verify: bool = True) -> None:
        super().__init__(file, device)
        self.index, self.dtype, self.feat_dim = index, dtype, feat_dim
        self.max_io_bytes, self.verify = max_io_bytes, verify

    def rows(self, b: int, *, buffer_bytes: int = 64 << 20) -> torch.Tensor:
        """Segment ``b``'s rows as a new ``[n, D]`` tensor in packed order (host; device memory for kvikio), read in
        spans of at most ``buffer_bytes`` and checked against the segment's CRC-32 before it is returned."""
        offset, nbytes = self.index.segment_span(b)
        n = nbytes // self.index.row_bytes
        out = torch.empty((n, self.feat_dim), dtype=self.dtype, device=self.buffer_device)
        if n == 0:
            return out
        flat = out.view(-1).view(torch.uint8)
        crc = 0
        step = max(PAGE, buffer_bytes // PAGE * PAGE)
        for lo in range(0, nbytes, step):
            size = min(step, nbytes - lo)
            if isinstance(self.file, MmapFile):
                pages = torch.arange((offset + lo) // PAGE, -(-(offset + lo + size) // PAGE))
                missing = self.file.not_resident(pages)
                start = time.perf_counter()
                flat[lo:lo + size] = self.file.u8[offset + lo:offset + lo + size]
                self.read_s += time.perf_counter() - start
                if missing >= 0:
                    self.file.counter.add(missing * PAGE, 0)
            else:
                plan = plan_span_reads(offset + lo, size, max_io_bytes=self.max_io_bytes)
                buf = self._read(plan)
                first = int(plan.row_pos[0])
                flat[lo:lo + size] = buf[first:first + size]
                self._consumed()
            if self.verify:
                piece = flat[lo:lo + size]
                crc = zlib.crc32(memoryview((piece.cpu() if piece.is_cuda else piece).numpy()).cast("B"), crc)
        if self.verify:
            self.index.check_crc(b, crc & 0xFFFFFFFF)
        return out
