"""Helpers for the zero-copy tests: tables placed at chosen byte offsets, with padded rows."""

from __future__ import annotations

import torch

from kernels.triton.table import RowTable

__all__ = ["random_rows", "placed_table"]


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
