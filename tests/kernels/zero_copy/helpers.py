"""Helpers for the zero-copy tests: tables placed at chosen byte offsets, with padded rows, and a fake CUDA driver
that registers host memory by whole pages as the real one does."""

from __future__ import annotations

import torch

from accessbench.kernels.strategies.zero_copy import pinning
from accessbench.kernels.strategies.zero_copy.table import RowTable

__all__ = ["PAGE", "FakeDriver", "own_pages", "placed_table", "random_rows"]

PAGE = pinning.page_size()


def random_rows(n: int, width: int, dtype: torch.dtype, *, seed: int = 0) -> torch.Tensor:
    """``[n, width]`` random values of ``dtype`` (integers spread over the type's range)."""
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return torch.randn(n, width, generator=g).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max + 1, (n, width), generator=g, dtype=torch.int64).to(dtype)


def placed_table(rows: torch.Tensor, *, offset: int = 0, pad: int = 0, device: str | torch.device = "cpu",
                 guard: int = 256) -> tuple[RowTable, torch.Tensor]:
    """Copy ``rows`` into a byte buffer so that row 0 sits ``offset`` bytes past a 256-byte boundary and rows are
    ``pad`` bytes apart; returns the table and the whole buffer (guard bytes of 0xAB around it)."""
    n, d = rows.shape
    elem = rows.element_size()
    row_bytes = d * elem
    stride = row_bytes + pad
    total = guard + offset + n * stride + guard
    buf = torch.full((total + 256,), 0xAB, dtype=torch.uint8, device=device)
    shift = (-buf.data_ptr()) % 256  # make offsets relative to a 256-byte boundary
    start = shift + guard + offset
    body = buf[start: start + n * stride].view(n, stride)
    body[:, :row_bytes] = rows.contiguous().view(torch.uint8).view(n, row_bytes).to(device)
    data = buf[start: start + (n - 1) * stride + row_bytes] if n else buf[start:start]
    return RowTable(data=data, num_rows=n, row_bytes=row_bytes, row_stride=stride, dtype=rows.dtype), buf


class FakeDriver:
    """Records registrations the way the driver keeps them: whole pages. A range that touches a page registered
    already is refused with ``already`` (CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED; drivers have answered 1 and 208
    too) and nothing of it is registered; range queries answer with the registration (exact start and size) that
    holds the page; ``memory_type`` says "host" for registered pages unless ``knows_host`` is False (then it refuses,
    so only the register's answer tells). Fails or misbehaves on request."""

    def __init__(self, *, fail_piece: int | None = None, code: int = 2, scatter: bool = False,
                 read_only: bool = True, ranges: bool = True, already: int = 712, knows_host: bool = True) -> None:
        self.live: dict[int, int] = {}  # start -> size, ours and foreign
        self.pages: dict[int, int] = {}  # page -> start of the registration that holds it
        self.calls: list[tuple[str, int, int, int]] = []
        self.fail_piece, self.code, self.scatter, self.ro = fail_piece, code, scatter, read_only
        self.ranges = ranges  # False: range queries are refused (as a driver might for host pointers)
        self.already, self.knows_host = already, knows_host
        self.type_queries = 0  # memory_type calls (not in ``calls``, which lists what changes registrations)

    @staticmethod
    def _pages(address: int, nbytes: int) -> range:
        return range(address // PAGE * PAGE, address + nbytes, PAGE)

    def foreign(self, address: int, nbytes: int) -> None:
        """Someone else registers ``[address, address + nbytes)`` (e.g. torch's pin_memory)."""
        assert self.register(address, nbytes, 0) == 0
        self.calls.pop()

    def register(self, address: int, nbytes: int, flags: int) -> int:
        self.calls.append(("register", address, nbytes, flags))
        if self.fail_piece is not None and sum(c[0] == "register" for c in self.calls) - 1 == self.fail_piece:
            return self.code
        pages = self._pages(address, nbytes)
        if any(p in self.pages for p in pages):
            return self.already
        self.live[address] = nbytes
        self.pages.update(dict.fromkeys(pages, address))
        return 0

    def unregister(self, address: int) -> int:
        self.calls.append(("unregister", address, 0, 0))
        nbytes = self.live.pop(address, None)
        if nbytes is None:
            return 713
        for p in self._pages(address, nbytes):
            del self.pages[p]
        return 0

    def device_pointer(self, address: int) -> tuple[int, int]:
        if address // PAGE * PAGE not in self.pages:
            return 1, 0  # CUDA_ERROR_INVALID_VALUE: not registered
        moved = self.scatter and self.live and address != min(self.live)  # later pieces land elsewhere
        return 0, address + (0x10000 if moved else 0)

    def memory_type(self, address: int) -> tuple[int, int]:
        self.type_queries += 1
        known = self.knows_host and address // PAGE * PAGE in self.pages
        return (0, pinning.MEMORYTYPE_HOST) if known else (1, 0)

    def pointer_range(self, address: int) -> tuple[int, int, int]:
        start = self.pages.get(address // PAGE * PAGE)
        return (1, 0, 0) if start is None or not self.ranges else (0, start, self.live[start])

    def error_name(self, code: int) -> str:
        return {1: "CUDA_ERROR_INVALID_VALUE (1)", 208: "CUDA_ERROR_ALREADY_MAPPED (208)", 2: "CUDA_ERROR_OUT_OF_MEMORY (2)", 801: "CUDA_ERROR_NOT_SUPPORTED (801)",
                712: "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED (712)"}.get(code, f"E{code}")

    def read_only_supported(self, device_index: int) -> bool:
        return self.ro


def own_pages(nbytes: int, *, offset: int = 0) -> torch.Tensor:
    """``nbytes`` bytes starting ``offset`` bytes into pages of their own."""
    return pinning.aligned_empty(nbytes + offset)[offset:]
