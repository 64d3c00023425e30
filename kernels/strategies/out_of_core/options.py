"""Options of the ``out-of-core`` strategy (a frozen dataclass, validated on construction)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .align import PAGE

__all__ = ["OutOfCoreOptions"]


@dataclass(frozen=True)
class OutOfCoreOptions:
    """How the out-of-core strategy reads features from disk and what it keeps in memory.

    ``io``: ``direct`` (O_DIRECT aligned reads, ``depth`` in flight, adjacent pages coalesced), ``mmap`` (the page
    cache decides, with ``mmap_advice``) or ``kvikio`` (GPUDirect Storage into device memory).
    ``layout``: ``rowwise`` (the store as it is) or ``packed`` (each planned batch's disk rows written contiguously
    by an offline pass over the superbatch, so a batch is one large read).
    ``hot``: how the static hot set is chosen, ``degree`` or ``presample`` (``presample_batches`` batches sampled
    with their own ``presample_seed``); it fills ``device_cache_bytes`` (CUDA only) then ``host_cache_bytes``.
    ``lookahead_bytes``: a Belady-optimal cache over each superbatch of ``superbatch`` batches (host memory; device
    memory with io=kvikio). ``memory_budget_bytes`` caps host caches plus I/O buffers (None: no cap).
    ``drop_page_cache``: drop the store's (and packed files') pages before measuring. ``pipeline``: overlap disk
    reads, host-to-device copies and compute with depth-2 queues. ``read_buffer_bytes``: the largest read buffer.
    ``page_cache_cap`` (io=mmap, needs ``memory_budget_bytes``): emulate a page cache bounded by the budget: after
    a batch, when the store's resident pages pass what the budget leaves after the caches, the store is unmapped,
    its pages dropped and the map reopened (coarser than the kernel's LRU under a real memory cgroup).
    ``max_io_bytes``: the largest single read (coalesced extents are split above it).
    ``packed_dir``: where packed batch files go (default: beside the store). ``keep_packed``: keep them after
    ``close``. ``verify_packed``: check packed files' checksums when they are reused.
    ``kvikio_compat``: let kvikio fall back to POSIX reads without GPUDirect Storage (recorded in the row).
    """

    io: Literal["direct", "mmap", "kvikio"] = "direct"
    layout: Literal["rowwise", "packed"] = "rowwise"
    hot: Literal["degree", "presample"] = "degree"
    host_cache_bytes: int = 0
    device_cache_bytes: int = 0
    lookahead_bytes: int = 0
    superbatch: int = 64
    depth: int = 32
    max_io_bytes: int = 1 << 20
    read_buffer_bytes: int = 64 << 20
    pipeline: bool = True
    memory_budget_bytes: int | None = None
    drop_page_cache: bool = True
    presample_batches: int = 8
    presample_seed: int = 0
    mmap_advice: Literal["normal", "random", "sequential"] = "normal"
    packed_dir: str | None = None
    keep_packed: bool = False
    verify_packed: bool = True
    kvikio_compat: bool = False
    page_cache_cap: bool = False

    def __post_init__(self) -> None:
        for key in ("host_cache_bytes", "device_cache_bytes", "lookahead_bytes", "presample_seed"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0")
        if self.superbatch < 1:
            raise ValueError("superbatch must be >= 1 (batches planned ahead)")
        if not 1 <= self.depth <= 1024:
            raise ValueError("depth (reads in flight) must be in [1, 1024]")
        if self.max_io_bytes < PAGE or self.max_io_bytes % PAGE:
            raise ValueError(f"max_io_bytes must be a positive multiple of {PAGE}")
        if self.read_buffer_bytes < self.max_io_bytes:
            raise ValueError("read_buffer_bytes must be >= max_io_bytes")
        if self.presample_batches < 1:
            raise ValueError("presample_batches must be >= 1")
        if self.page_cache_cap and (self.io != "mmap" or self.memory_budget_bytes is None):
            raise ValueError("page_cache_cap needs io=mmap and a memory_budget_bytes to cap the page cache at")
        if self.memory_budget_bytes is not None:
            if self.memory_budget_bytes <= 0:
                raise ValueError("memory_budget_bytes must be > 0 (or None for no cap)")
            host = self.host_cache_bytes + (self.lookahead_bytes if self.io != "kvikio" else 0)
            if host + self.read_buffer_bytes > self.memory_budget_bytes:
                raise ValueError(
                    f"host caches ({host} B) plus one read buffer ({self.read_buffer_bytes} B) exceed "
                    f"memory_budget_bytes={self.memory_budget_bytes}; shrink host_cache_bytes/lookahead_bytes"
                )
