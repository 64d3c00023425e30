"""Turn a set of feature rows into page-aligned reads: which pages to read, coalesced into extents, and where each
row lands in the read buffer. Pure tensor arithmetic, shared by the direct and kvikio readers.

Row ``i`` occupies file bytes ``[offset + i * stride, offset + i * stride + row_bytes)``. Every page (``PAGE``
bytes) that a requested row touches is read exactly once, however many rows share it; runs of adjacent pages become
one read of up to ``max_io_bytes``. The buffer holds the read pages back to back in file order, so a row that
straddles two pages stays contiguous in the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .align import PAGE

__all__ = ["ReadPlan", "plan_row_reads", "plan_span_reads", "rows_from_buffer"]


@dataclass(frozen=True)
class ReadPlan:
    """Reads that cover a set of rows. Offsets, lengths and buffer positions are in bytes (int64, CPU)."""

    offsets: torch.Tensor  # [m] file offset of each read (page-aligned)
    lengths: torch.Tensor  # [m] bytes of each read (whole pages)
    buf_pos: torch.Tensor  # [m] where each read lands in the buffer
    row_pos: torch.Tensor  # [n] byte position of each requested row in the buffer
    total_bytes: int  # buffer size: the sum of ``lengths``

    @property
    def num_reads(self) -> int:
        """Number of read operations in the plan."""
        return int(self.offsets.numel())


def _split_runs(pages: torch.Tensor, max_pages: int) -> torch.Tensor:
    """Indices into sorted unique ``pages`` where a read starts: a gap before it, or a run reaching ``max_pages``."""
    n = pages.numel()
    brk = torch.ones(n, dtype=torch.bool)
    if n > 1:
        brk[1:] = pages[1:] != pages[:-1] + 1
    run_start = torch.nonzero(brk).flatten()
    run_id = torch.cumsum(brk.to(torch.int64), 0) - 1
    pos_in_run = torch.arange(n) - run_start[run_id]
    return torch.nonzero(pos_in_run % max_pages == 0).flatten()


def plan_row_reads(
    ids: torch.Tensor, *, offset: int, row_stride: int, row_bytes: int, max_io_bytes: int = 1 << 20, page: int = PAGE
) -> ReadPlan:
    """Page-aligned, coalesced reads covering rows ``ids`` (int64 ``[n]``, any order, duplicates allowed)."""
    if max_io_bytes < page or max_io_bytes % page:
        raise ValueError(f"max_io_bytes must be a positive multiple of {page}, got {max_io_bytes}")
    ids = ids.to(torch.int64).cpu()
    empty = torch.empty(0, dtype=torch.int64)
    if ids.numel() == 0:
        return ReadPlan(empty, empty, empty, empty, 0)
    start = offset + ids * row_stride
    first = start // page
    last = (start + row_bytes - 1) // page
    span = last - first + 1
    if bool((span == 1).all()):
        pages = torch.unique(first)
    else:
        within = torch.arange(int(span.sum())) - torch.repeat_interleave(torch.cumsum(span, 0) - span, span)
        pages = torch.unique(torch.repeat_interleave(first, span) + within)
    rank_of_first = torch.searchsorted(pages, first)
    row_pos = rank_of_first * page + (start - first * page)
    starts = _split_runs(pages, max_io_bytes // page)
    ends = torch.cat([starts[1:], torch.tensor([pages.numel()])])
    lengths = (ends - starts) * page
    return ReadPlan(pages[starts] * page, lengths, starts * page, row_pos, int(pages.numel()) * page)


def plan_span_reads(offset: int, nbytes: int, *, max_io_bytes: int = 1 << 20, page: int = PAGE) -> ReadPlan:
    """Reads covering one contiguous byte span (a packed batch); ``row_pos`` holds the span's start in the buffer."""
    lo = offset // page * page
    hi = -(-(offset + nbytes) // page) * page
    offs = torch.arange(lo, hi, max_io_bytes, dtype=torch.int64) if hi > lo else torch.empty(0, dtype=torch.int64)
    lengths = torch.clamp(hi - offs, max=max_io_bytes)
    return ReadPlan(offs, lengths, offs - lo, torch.tensor([offset - lo]), hi - lo)


def rows_from_buffer(buf: torch.Tensor, row_pos: torch.Tensor, row_bytes: int, dtype: torch.dtype) -> torch.Tensor:
    """Copy the rows starting at byte ``row_pos`` (int64 ``[n]``) of uint8 ``buf`` into a ``[n, D]`` ``dtype`` tensor.

    Works on any device (``row_pos`` is moved to ``buf``'s device). ``row_bytes`` must be a multiple of the element size.
    """
    elem = torch.empty(0, dtype=dtype).element_size()
    if row_bytes % elem:
        raise ValueError(f"row_bytes {row_bytes} is not a multiple of the element size {elem}")
    n = int(row_pos.numel())
    if n == 0:
        return torch.empty((0, row_bytes // elem), dtype=dtype, device=buf.device)
    windows = buf.as_strided((buf.numel() - row_bytes + 1, row_bytes), (1, 1))  # row starting at every byte
    return windows[row_pos.to(buf.device)].view(dtype)
