"""Memory-mapped reads: the kernel's page cache decides what comes from disk (with its readahead), as PyG and DGL
do with on-disk feature tables. Own accounting: the needed pages that were not resident before a read (``mincore``),
a lower bound on what the kernel reads (readahead adds more; ``/proc/self/io`` tells the rest)."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from accessbench.kernels.errors import StoreError

from .align import PAGE
from .counters import IoCounter
from .pagecache import _libc

__all__ = ["Advice", "MmapFile"]

Advice = Literal["normal", "random", "sequential"]
_ADVICE = {"normal": "MADV_NORMAL", "random": "MADV_RANDOM", "sequential": "MADV_SEQUENTIAL"}


class MmapFile:
    """A read-only private mapping of a file, viewed as bytes (``u8``); reopen it to let its pages be dropped."""

    def __init__(self, path: str | os.PathLike[str], *, advice: Advice = "normal") -> None:
        if advice not in _ADVICE:
            raise ValueError(f"advice={advice!r}; valid: {', '.join(_ADVICE)}")
        self.path = Path(path)
        self.advice = advice
        self.counter = IoCounter()
        self._mm: mmap.mmap | None = None
        self.u8: torch.Tensor = torch.empty(0, dtype=torch.uint8)
        self.open()

    def open(self) -> None:
        """(Re)map the file."""
        self.close()
        self.size = os.path.getsize(self.path)
        if self.size == 0:
            return
        try:
            with open(self.path, "rb") as f:
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private: the file is never written
        except OSError as exc:
            raise StoreError(f"cannot map {self.path}: {exc.strerror or exc}") from None
        flag = getattr(mmap, _ADVICE[self.advice], None)
        if flag is not None and hasattr(self._mm, "madvise"):
            self._mm.madvise(flag)
        self.u8 = torch.from_numpy(np.frombuffer(self._mm, dtype=np.uint8))

    def not_resident(self, pages: torch.Tensor) -> int:
        """How many of ``pages`` (sorted unique page numbers) are not in the page cache now (-1 if unknown)."""
        lib = _libc()
        if lib is None or self._mm is None or pages.numel() == 0:
            return -1 if lib is None else 0
        lo, hi = int(pages[0]), int(pages[-1]) + 1
        vec = np.zeros(hi - lo, dtype=np.uint8)
        addr = self.u8.data_ptr() + lo * PAGE
        length = min(self.size - lo * PAGE, (hi - lo) * PAGE)
        if lib.mincore(ctypes.c_void_p(addr), length, vec.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte))) != 0:
            return -1
        resident = torch.from_numpy(vec)[pages - lo] & 1
        return int(pages.numel() - int(resident.sum()))

    def rows(self, ids: torch.Tensor, *, offset: int, row_stride: int, row_bytes: int, dtype: torch.dtype) -> torch.Tensor:
        """Rows ``ids`` (int64 ``[n]``) as ``[n, D]`` via ``index_select`` on the mapping (page faults read the disk)."""
        n_rows = (self.size - offset - row_bytes) // row_stride + 1 if self.size >= offset + row_bytes else 0
        table = torch.as_strided(self.u8, (n_rows, row_bytes), (row_stride, 1), offset)
        return torch.index_select(table, 0, ids).view(dtype)

    def span(self, offset: int, nbytes: int) -> torch.Tensor:
        """A copy of bytes ``[offset, offset + nbytes)`` (uint8)."""
        return self.u8[offset:offset + nbytes].clone()

    def close(self) -> None:
        """Unmap (the tensors handed out are copies, so nothing refers to the mapping)."""
        self.u8 = torch.empty(0, dtype=torch.uint8)
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # a view is still alive somewhere; the mapping goes when it does
                pass
            self._mm = None
