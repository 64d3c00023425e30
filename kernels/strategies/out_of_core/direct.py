"""``O_DIRECT`` reads that bypass the page cache, many in flight from a pool of threads (``os.preadv`` releases the
GIL, so ``depth`` threads keep up to ``depth`` reads queued at the device)."""

from __future__ import annotations

import errno
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from accessbench.kernels.errors import StoreError, StrategyUnavailable

from .align import PAGE, aligned_empty, writable_view
from .counters import IoCounter
from .extents import ReadPlan
from .pagecache import filesystem_of

__all__ = ["DirectFile", "check_odirect", "odirect_refused"]

#: What filesystems answer O_DIRECT with when they do not support it: EINVAL (tmpfs before Linux 6.6, most),
#: EOPNOTSUPP/ENOTSUP (some FUSE and network filesystems).
_REFUSED = frozenset({errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)})


def odirect_refused(path: str | os.PathLike[str], detail: str = "", *, code: int = errno.EINVAL
                    ) -> StrategyUnavailable:
    """The error for a filesystem that refuses ``O_DIRECT`` (tmpfs, some FUSE and network filesystems)."""
    fstype, mnt = filesystem_of(path)
    name = errno.errorcode.get(code, str(code))
    return StrategyUnavailable(
        f"O_DIRECT is refused for {path} on the {fstype} filesystem mounted at {mnt} ({name}{': ' + detail if detail else ''}); "
        "put the store on a block-device filesystem such as ext4 or xfs, or use io=mmap"
    )


def check_odirect(path: str | os.PathLike[str]) -> None:
    """Raise ``StrategyUnavailable`` (naming the filesystem and what to do) unless ``path``'s filesystem accepts
    ``O_DIRECT``: opened with it and one page-aligned page read at offset 0, as every later read will be. Called by
    ``prepare`` so a refusal is said there, never as an EINVAL in a measured step."""
    if not hasattr(os, "O_DIRECT"):
        raise StrategyUnavailable("io=direct needs O_DIRECT, which this platform's os module lacks (Linux only)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise odirect_refused(path, "at open", code=exc.errno) from None
        raise StoreError(f"cannot open {path} for direct reads: {exc.strerror or exc}") from None
    try:
        probe = aligned_empty(PAGE)
        os.preadv(fd, [writable_view(probe)], 0)
    except OSError as exc:
        if exc.errno in _REFUSED:
            raise odirect_refused(path, "reading one aligned page at offset 0", code=exc.errno) from None
        raise StoreError(f"reading {path} at offset 0 failed: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


class DirectFile:
    """A file opened with ``O_DIRECT``; ``read(plan, buf)`` runs the plan's reads with up to ``depth`` in flight.

    Buffers must be page-aligned CPU uint8 tensors (``align.aligned_empty``). Counts bytes and read calls in
    ``counter``.
    """

    def __init__(self, path: str | os.PathLike[str], *, depth: int = 32) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.path = Path(path)
        self.depth = int(depth)
        self.counter = IoCounter()
        if not hasattr(os, "O_DIRECT"):
            raise StrategyUnavailable("io=direct needs O_DIRECT, which this platform's os module lacks (Linux only)")
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        except OSError as exc:
            if exc.errno in _REFUSED:
                raise odirect_refused(self.path, "at open", code=exc.errno) from None
            raise StoreError(f"cannot open {self.path} for direct reads: {exc.strerror or exc}") from None
        self.size = os.fstat(self._fd).st_size
        self._pool: ThreadPoolExecutor | None = None
        if self.depth > 1:  # started now, so the first batch's timing does not include thread start-up
            self._pool = ThreadPoolExecutor(self.depth, thread_name_prefix="accessbench-odirect")
            for f in [self._pool.submit(time.sleep, 0) for _ in range(self.depth)]:
                f.result()
        if self.size:
            probe = aligned_empty(PAGE)
            self._pread(writable_view(probe), 0)  # tmpfs and friends refuse at the first read, not at open

    def _pread(self, view: memoryview, offset: int) -> int:
        try:
            return os.preadv(self._fd, [view], offset)
        except OSError as exc:
            self._raise(exc, offset)
            raise  # unreachable: _raise always raises

    def _run(self, view: memoryview, offsets: list[int], lengths: list[int], positions: list[int]) -> int:
        """One worker's share of the reads, issued back to back (one read in flight per worker)."""
        fd, preadv = self._fd, os.preadv
        total = calls = 0
        try:
            for off, length, pos in zip(offsets, lengths, positions):
                n = preadv(fd, [view[pos:pos + length]], off)
                calls += 1
                if n != length:
                    n, extra = self._finish_short(view, off, length, pos, n)
                    calls += extra
                total += n
        except OSError as exc:
            self.counter.add(total, calls)
            self._raise(exc, off)
        self.counter.add(total, calls)
        return total

    def _finish_short(self, view: memoryview, off: int, length: int, pos: int, got: int) -> tuple[int, int]:
        """Complete a short read (end of file, or a partial transfer); returns (bytes, extra calls)."""
        calls = 0
        while got < length and off + got < self.size and got > 0:
            if got % PAGE:
                raise StoreError(f"short unaligned read from {self.path} at offset {off} ({got} of {length} bytes)")
            n = self._pread(view[pos + got:pos + length], off + got)
            calls += 1
            if n == 0:
                break
            got += n
        return got, calls

    def _raise(self, exc: OSError, offset: int) -> None:
        if exc.errno in _REFUSED:
            raise odirect_refused(self.path, f"reading at offset {offset}", code=exc.errno) from None
        raise StoreError(f"reading {self.path} at offset {offset} failed: {exc.strerror or exc}") from None

    def read(self, plan: ReadPlan, buf: torch.Tensor) -> int:
        """Run every read of ``plan`` into ``buf`` (aligned uint8, at least ``plan.total_bytes``); returns bytes read."""
        if buf.numel() < plan.total_bytes:
            raise ValueError(f"buffer holds {buf.numel()} bytes, the plan needs {plan.total_bytes}")
        if buf.data_ptr() % PAGE:
            raise ValueError("O_DIRECT buffers must be page-aligned (use accessbench.kernels.strategies.out_of_core.align.aligned_empty)")
        m = plan.num_reads
        if m == 0:
            return 0
        view = writable_view(buf)
        offs, lens, pos = plan.offsets.tolist(), plan.lengths.tolist(), plan.buf_pos.tolist()
        k = min(self.depth, m)
        if k == 1:
            return self._run(view, offs, lens, pos)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.depth, thread_name_prefix="accessbench-odirect")
        futures = [self._pool.submit(self._run, view, offs[i::k], lens[i::k], pos[i::k]) for i in range(k)]
        return sum(f.result() for f in futures)

    def close(self) -> None:
        """Stop the pool and close the file. Safe to call twice."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
