"""``RowTable``: the bytes of a feature table as the gather kernel addresses them (any alignment, any row stride)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RowTable", "byte_view"]


def byte_view(t: torch.Tensor, nbytes: int | None = None) -> torch.Tensor:
    """A 1-D uint8 tensor over the bytes of ``t`` starting at ``t.data_ptr()`` (``nbytes`` of them; default: up to
    the end of its storage). Shares memory with ``t``; the address keeps its alignment, whatever it is."""
    storage = t.untyped_storage()
    offset = t.storage_offset() * t.element_size()
    avail = storage.nbytes() - offset
    n = avail if nbytes is None else int(nbytes)
    if n < 0 or n > avail:
        raise ValueError(f"byte_view: {n} bytes requested, {avail} available past the tensor's start")
    return torch.empty(0, dtype=torch.uint8, device=t.device).set_(storage, offset, (n,), (1,))


@dataclass(frozen=True)
class RowTable:
    """Rows of ``dtype`` elements: row ``i`` is ``data[i * row_stride : i * row_stride + row_bytes]``.

    ``data``: 1-D uint8, starting at row 0, at least ``(num_rows - 1) * row_stride + row_bytes`` bytes. It lives where
    the kernel reads it: a CUDA tensor (device memory, or a UVA view of pinned host memory) or, under
    ``TRITON_INTERPRET=1``, a CPU tensor. Its address may have any alignment.
    """

    data: torch.Tensor
    num_rows: int
    row_bytes: int
    row_stride: int
    dtype: torch.dtype

    def __post_init__(self) -> None:
        if self.data.dtype != torch.uint8 or self.data.dim() != 1:
            raise ValueError("RowTable.data must be a 1-D uint8 tensor")
        elem = torch.empty(0, dtype=self.dtype).element_size()
        if self.row_bytes < elem or self.row_bytes % elem:
            raise ValueError(f"row_bytes {self.row_bytes} is not a whole number of {self.dtype} elements")
        if self.row_stride < self.row_bytes:
            raise ValueError(f"row_stride {self.row_stride} < row_bytes {self.row_bytes}")
        need = (self.num_rows - 1) * self.row_stride + self.row_bytes if self.num_rows else 0
        if self.num_rows < 0 or self.data.numel() < need:
            raise ValueError(f"RowTable.data holds {self.data.numel()} bytes, {self.num_rows} rows need {need}")

    @property
    def row_elems(self) -> int:
        """Elements per row (the output's width)."""
        return self.row_bytes // torch.empty(0, dtype=self.dtype).element_size()

    @property
    def address(self) -> int:
        """Address of row 0 as the kernel sees it."""
        return int(self.data.data_ptr())

    @property
    def device(self) -> torch.device:
        """Where the kernel reads the table from (CUDA for device memory and UVA views)."""
        return self.data.device

    @classmethod
    def from_tensor(cls, rows: torch.Tensor, data: torch.Tensor | None = None) -> RowTable:
        """Describe a 2-D tensor with unit stride along dim 1 (rows may be padded: ``stride(0) >= shape[1]``).

        ``data`` replaces the bytes the kernel reads (e.g. a UVA view of the same pinned memory); by default it is a
        byte view of ``rows`` itself.
        """
        if rows.dim() != 2:
            raise ValueError(f"expected a 2-D table, got shape {tuple(rows.shape)}")
        n, d = rows.shape
        if d > 1 and rows.stride(1) != 1:
            raise ValueError("the table's rows must be contiguous (stride 1 along the feature dimension)")
        elem = rows.element_size()
        stride = rows.stride(0) * elem if n > 1 else d * elem
        if stride < d * elem:
            raise ValueError(f"the table's rows overlap (stride(0) = {rows.stride(0)} < width {d})")
        nbytes = (n - 1) * stride + d * elem if n else 0
        data = byte_view(rows, nbytes) if data is None else data
        return cls(data=data, num_rows=int(n), row_bytes=int(d * elem), row_stride=int(stride), dtype=rows.dtype)
