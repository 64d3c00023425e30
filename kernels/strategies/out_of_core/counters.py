"""Disk counters: the readers' own (bytes and read operations they issued) and the kernel's (``/proc/self/io``
``read_bytes``: block-device bytes this process caused to be read, all threads; major page faults from
``getrusage``), so the two can be cross-checked."""

from __future__ import annotations

import resource
import threading
from dataclasses import dataclass

__all__ = ["IoCounter", "KernelIo", "kernel_io"]

_PROC_IO = "/proc/self/io"


class IoCounter:
    """Thread-safe running totals of bytes read and read operations issued by a reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes = 0
        self.ops = 0

    def add(self, nbytes: int, ops: int = 1) -> None:
        """Count ``ops`` reads that returned ``nbytes`` bytes in all."""
        with self._lock:
            self.bytes += int(nbytes)
            self.ops += int(ops)

    def snapshot(self) -> tuple[int, int]:
        """``(bytes, ops)`` so far."""
        with self._lock:
            return self.bytes, self.ops


@dataclass(frozen=True)
class KernelIo:
    """One reading of the kernel's per-process I/O accounting; ``None`` fields could not be read (see ``reason``)."""

    read_bytes: int | None
    major_faults: int
    reason: str = ""

    def __sub__(self, other: KernelIo) -> KernelIo:
        rb = None if self.read_bytes is None or other.read_bytes is None else self.read_bytes - other.read_bytes
        return KernelIo(rb, self.major_faults - other.major_faults, self.reason or other.reason)


def kernel_io() -> KernelIo:
    """Read ``/proc/self/io`` ``read_bytes`` (None with a reason where it cannot be read) and major faults."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    try:
        with open(_PROC_IO) as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return KernelIo(int(line.split()[1]), faults)
        return KernelIo(None, faults, f"{_PROC_IO} has no read_bytes line")
    except OSError as exc:
        return KernelIo(None, faults, f"{_PROC_IO} unreadable ({exc.strerror or exc}); the kernel may lack task I/O accounting")
