"""Per-batch counters of the out-of-core strategy, carried with each batch through the pipeline and added to the
strategy's ``AccessStats`` when the batch is handed to the caller (so a ``reset_stats`` between batches splits them
exactly, whatever the reader thread is doing ahead)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.types import AccessStats

from .counters import KernelIo

__all__ = ["BatchDelta", "DiskTotals", "MemoryBudgetExceeded"]


class MemoryBudgetExceeded(AccessBenchError):
    """The strategy's caches and buffers would need more host memory than ``memory_budget_bytes``."""


@dataclass
class BatchDelta:
    """What serving one batch (or one ``gather``) moved, by tier."""

    rows: int = 0
    row_bytes: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    disk_rows: int = 0
    bytes: dict[str, int] = field(default_factory=dict)
    disk_own: int = 0
    disk_ops: int = 0
    disk_read_s: float = 0.0
    kernel: KernelIo | None = None

    def hit(self, tier: str, n: int, nbytes_tier: str | None = None) -> None:
        """Count ``n`` rows served by cache tier ``tier`` (bytes counted under ``nbytes_tier`` when given)."""
        if n:
            self.hits[tier] = self.hits.get(tier, 0) + int(n)
            if nbytes_tier:
                self.add_bytes(nbytes_tier, n * self.row_bytes)

    def add_bytes(self, tier: str, nbytes: int) -> None:
        """Count ``nbytes`` through ``tier``."""
        if nbytes:
            self.bytes[tier] = self.bytes.get(tier, 0) + int(nbytes)


@dataclass
class DiskTotals:
    """Running totals since the last ``reset_stats``: own and kernel disk counters, read time, rows from disk."""

    disk_own: int = 0
    disk_ops: int = 0
    disk_read_s: float = 0.0
    disk_rows: int = 0
    kernel_read_bytes: int | None = 0
    major_faults: int = 0
    kernel_reason: str = ""
    batches: int = 0

    def apply(self, delta: BatchDelta, stats: AccessStats, *, mmap: bool, caches: tuple[str, ...]) -> None:
        """Add ``delta`` to ``stats`` and to these totals."""
        stats.count_rows(delta.rows, delta.row_bytes)
        for tier, n in delta.hits.items():
            stats.hits[tier] = stats.hits.get(tier, 0) + n
        for tier in caches:
            stats.hits.setdefault(tier, 0)
        if caches or delta.hits:  # with no cache tier there is no hit rate to report (null, not 0)
            stats.misses["disk"] = stats.misses.get("disk", 0) + delta.disk_rows
        for tier, n in delta.bytes.items():
            stats.add_bytes(tier, n)
        k = delta.kernel
        if k is not None:
            if self.kernel_read_bytes is not None and k.read_bytes is not None:
                self.kernel_read_bytes += k.read_bytes
            else:
                self.kernel_read_bytes = None
                self.kernel_reason = k.reason
            self.major_faults += k.major_faults
        self.disk_own += delta.disk_own
        self.disk_ops += delta.disk_ops
        self.disk_read_s += delta.disk_read_s
        self.disk_rows += delta.disk_rows
        self.batches += 1
        disk = self.kernel_read_bytes if mmap and self.kernel_read_bytes is not None else self.disk_own
        stats.bytes_by_tier["disk"] = disk
        stats.io_ops = self.major_faults if mmap else self.disk_ops

    def extras(self, *, row_bytes: int, mmap: bool, stats: AccessStats) -> dict[str, Any]:
        """The disk figures for the record's extras (None with a reason where something was not measured)."""
        needed = self.disk_rows * row_bytes
        disk = stats.bytes_by_tier.get("disk", 0)
        rows = stats.rows
        out: dict[str, Any] = {
            "disk_bytes_own": self.disk_own,
            "disk_bytes_kernel": self.kernel_read_bytes,
            "disk_bytes_source": ("/proc/self/io read_bytes (the kernel reads for mmap, readahead included)"
                                  if mmap and self.kernel_read_bytes is not None else "own counter of bytes read"),
            "disk_bytes_own_meaning": ("pages needed that were not resident before the read (mincore), x 4096"
                                       if mmap else "bytes returned by the reads issued"),
            "disk_ops": stats.io_ops,
            "disk_ops_meaning": "major page faults (getrusage)" if mmap else "read calls issued",
            "disk_rows": self.disk_rows,
            "disk_read_s": self.disk_read_s,
            "iops": (stats.io_ops / self.disk_read_s) if self.disk_read_s > 0 and stats.io_ops else None,
            "read_amplification": (disk / needed) if needed else None,
            "hit_rate_by_tier": {t: (n / rows if rows else None) for t, n in stats.hits.items()},
            "disk_fraction": (self.disk_rows / rows) if rows else None,
        }
        if self.kernel_read_bytes is None:
            out["disk_bytes_kernel_reason"] = self.kernel_reason
        elif self.disk_own and not mmap:
            out["disk_bytes_kernel_over_own"] = self.kernel_read_bytes / self.disk_own
        return out
