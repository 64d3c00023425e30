"""Page-cache control and inspection for a file: drop its pages (``posix_fadvise(POSIX_FADV_DONTNEED)``), measure
how much of it is resident (``mincore``), and name the filesystem that holds it (for clear ``O_DIRECT`` errors)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DropResult", "drop_file_pages", "filesystem_of", "resident_fraction"]


@dataclass(frozen=True)
class DropResult:
    """What dropping a file's pages did. ``ok`` is True when the call succeeded and the pages left resident are at
    most 1% of the file (pages mapped by a running process cannot be dropped)."""

    path: str
    ok: bool
    method: str
    resident_before: float | None  # fraction of the file's pages in the page cache before the drop
    resident_after: float | None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict for the record's extras."""
        return asdict(self)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6", use_errno=True)
    except OSError:
        return None
    lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    lib.mincore.restype = ctypes.c_int
    return lib


def resident_fraction(path: str | os.PathLike[str]) -> float | None:
    """Fraction of ``path``'s pages in the page cache (0..1), via ``mincore`` on a fresh mapping; None if unknown."""
    lib = _libc()
    size = os.path.getsize(path)
    if lib is None:
        return None
    if size == 0:
        return 0.0
    npages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    try:
        view = np.frombuffer(m, dtype=np.uint8)  # only to learn the mapping's address; never read (no faults)
        addr = int(view.ctypes.data)
        vec = np.zeros(npages, dtype=np.uint8)
        rc = lib.mincore(ctypes.c_void_p(addr), size, vec.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)))
        del view
        if rc != 0:
            return None
        return float(np.count_nonzero(vec & 1)) / npages
    finally:
        m.close()


_MADV_DONTNEED = 4


def _release_own_mappings(path: str | os.PathLike[str]) -> int:
    """Zap this process's private mappings of ``path`` (``madvise(MADV_DONTNEED)``), so their pages can be dropped.

    A page mapped into a process is not dropped by ``POSIX_FADV_DONTNEED``; the graph's own memory-mapped feature
    table (opened copy-on-write, never written) keeps every page it touched (verification, exactness checks)
    resident. Zapping a private, unmodified file mapping only forgets the page-table entries: the next access reads
    the file again. Returns the bytes of mappings released.
    """
    lib = _libc()
    if lib is None:
        return 0
    real = os.path.realpath(path)
    released = 0
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return 0
    lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.madvise.restype = ctypes.c_int
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[5] != real or parts[1][3] != "p":
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lib.madvise(ctypes.c_void_p(lo), hi - lo, _MADV_DONTNEED) == 0:
            released += hi - lo
    return released


def drop_file_pages(path: str | os.PathLike[str]) -> DropResult:
    """Write back ``path``'s dirty pages (``fsync``), release this process's own mappings of it, then ask the
    kernel to drop its pages from the page cache (``posix_fadvise(POSIX_FADV_DONTNEED)``); report whether it
    worked (``mincore`` on a fresh mapping)."""
    method = "posix_fadvise(POSIX_FADV_DONTNEED)"
    before = resident_fraction(path)
    if _release_own_mappings(path):
        method = "madvise(MADV_DONTNEED) on this process's mappings + " + method
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except (OSError, AttributeError) as exc:
        return DropResult(str(path), False, method, before, resident_fraction(path), f"{type(exc).__name__}: {exc}")
    after = resident_fraction(path)
    ok = after is None or after <= 0.01
    error = "" if ok else f"{after:.1%} of the file stayed resident (pages mapped by a process are not dropped)"
    if after is None:
        error = "mincore unavailable: the drop was requested but could not be verified"
    return DropResult(str(path), ok, method, before, after, error)


def filesystem_of(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(fstype, mount point)`` of the filesystem holding ``path`` (from ``/proc/mounts``; ``unknown`` if unreadable)."""
    real = str(Path(path).resolve())
    best = ("unknown", "/")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[1]):
                    best = (parts[2], mnt)
    except OSError:
        pass
    return best
