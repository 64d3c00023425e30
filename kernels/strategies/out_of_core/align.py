"""Page-aligned host buffers for ``O_DIRECT`` reads, allocated by torch (optionally pinned) and sliced to alignment."""

from __future__ import annotations

import torch

__all__ = ["PAGE", "align_down", "align_up", "aligned_empty", "writable_view"]

#: Alignment of ``O_DIRECT`` offsets, lengths and buffers, and the page size readers plan with (bytes).
PAGE = 4096


def align_up(n: int, to: int = PAGE) -> int:
    """Smallest multiple of ``to`` that is >= ``n``."""
    return -(-int(n) // to) * to


def align_down(n: int, to: int = PAGE) -> int:
    """Largest multiple of ``to`` that is <= ``n``."""
    return int(n) // to * to


def aligned_empty(nbytes: int, *, pinned: bool = False, align: int = PAGE) -> torch.Tensor:
    """A uint8 tensor of ``nbytes`` bytes whose first byte sits on an ``align``-byte boundary.

    ``pinned`` allocates page-locked memory (needs CUDA). The tensor is a view into a slightly larger allocation,
    which it keeps alive.
    """
    nbytes = max(int(nbytes), 0)
    raw = torch.empty(nbytes + align, dtype=torch.uint8, pin_memory=pinned)
    shift = (-raw.data_ptr()) % align
    return raw[shift:shift + nbytes]


def writable_view(buf: torch.Tensor) -> memoryview:
    """A writable ``memoryview`` over a contiguous CPU uint8 tensor (what ``os.preadv`` fills)."""
    if buf.device.type != "cpu" or buf.dtype != torch.uint8 or not buf.is_contiguous():
        raise ValueError("need a contiguous CPU uint8 tensor")
    return memoryview(buf.numpy()).cast("B")
