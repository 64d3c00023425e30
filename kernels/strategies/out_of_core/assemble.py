"""Assembling a batch's feature rows from the tiers: device hot cache, host hot cache, look-ahead cache and disk
(rowwise store or packed segment), then (CUDA, host paths) one host-to-device copy and a scatter on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .accounting import BatchDelta, MemoryBudgetExceeded
from .counters import kernel_io
from .hotcache import StaticCache
from .sources import RowSource, SegmentSource

__all__ = ["Assembler", "Part"]

_EMPTY = torch.empty(0, dtype=torch.int64)


@dataclass
class Part:
    """A batch's rows after the host-side work. ``final``: ``rows`` is the finished ``[n, D]`` on the compute device;
    otherwise ``rows`` is pinned host memory holding the rows at ``host_pos`` (all positions when None) and the
    device tier's rows (``dev_pos``, ``dev_slots``) are added on the device by ``Assembler.finalize``."""

    n: int
    rows: torch.Tensor
    final: bool
    host_pos: torch.Tensor | None
    dev_pos: torch.Tensor
    dev_slots: torch.Tensor
    delta: BatchDelta


class Assembler:
    """Serves row sets from the tiers into one tensor; the look-ahead buffer is read and written only here."""

    def __init__(self, *, device: torch.device, dtype: torch.dtype, feat_dim: int, row_bytes: int,
                 rows_src: RowSource, read_buffer_bytes: int, budget: int | None, inflight: int) -> None:
        self.device, self.dtype, self.feat_dim, self.row_bytes = device, dtype, feat_dim, row_bytes
        self.rows_src = rows_src
        self.segments: SegmentSource | None = None
        self.static: StaticCache | None = None
        self.lookahead: torch.Tensor | None = None  # [capacity, D] rows, host (device for kvikio)
        self.phys = torch.empty(0, dtype=torch.int64)  # slot -> id the look-ahead buffer holds (-1: empty)
        self.read_buffer_bytes = read_buffer_bytes
        self.budget = budget
        self.inflight = inflight
        self.peak_host_bytes = 0
        self.kvikio = rows_src.buffer_device.type == "cuda"

    def _fixed_host_bytes(self) -> int:
        total = self.rows_src.buffer_bytes + (self.segments.buffer_bytes if self.segments is not None else 0)
        if self.static is not None:
            total += self.static.host_bytes
        if self.lookahead is not None and self.lookahead.device.type == "cpu":
            total += self.lookahead.numel() * self.lookahead.element_size()
        return total

    def _check_budget(self, batch_host_bytes: int, disk_bytes: int, inflight: int | None = None) -> None:
        inflight = self.inflight if inflight is None else inflight
        need = self._fixed_host_bytes() + inflight * batch_host_bytes + disk_bytes
        self.peak_host_bytes = max(self.peak_host_bytes, need)
        if self.budget is not None and need > self.budget:
            raise MemoryBudgetExceeded(
                f"out-of-core needs about {need / 2**20:.1f} MiB of host memory for its caches, read buffers and "
                f"{inflight} batches in flight ({batch_host_bytes / 2**20:.1f} MiB each), more than "
                f"memory_budget_bytes={self.budget} ({self.budget / 2**20:.1f} MiB); lower the caches, the batch size "
                "or read_buffer_bytes, or set pipeline=false"
            )

    def assemble(self, ids: torch.Tensor, *, static_slot: torch.Tensor, la_pos: torch.Tensor = _EMPTY,
                 la_slots: torch.Tensor = _EMPTY, disk_pos: torch.Tensor = _EMPTY, segment: int | None = None,
                 admit_pos: torch.Tensor = _EMPTY, admit_slots: torch.Tensor = _EMPTY,
                 relocate: tuple[torch.Tensor, torch.Tensor] | None = None, inflight: int | None = None) -> Part:
        """Rows of unique ``ids`` (int64 CPU ``[n]``) gathered from every tier, in ``ids`` order.

        ``static_slot``: the static cache's slot per id (-1: not cached); ``la_pos``/``la_slots``: rows in the
        look-ahead buffer; ``disk_pos``: rows read from disk (from packed ``segment`` when given, in its order);
        ``admit_*``: rows the look-ahead buffer keeps afterwards; ``relocate``: buffer moves done first.
        ``inflight``: batches of this size alive at once, for the budget check (default: the pipeline's).
        """
        n, rb = ids.numel(), self.row_bytes
        delta = BatchDelta(rows=n, row_bytes=rb)
        st = self.static
        n_dev = st.n_dev if st is not None else 0
        dev_mask = (static_slot >= 0) & (static_slot < n_dev) if n_dev else None
        dev_pos = torch.nonzero(dev_mask).flatten() if dev_mask is not None else _EMPTY
        on_cuda = self.device.type == "cuda"
        final = not on_cuda or self.kvikio
        host_pos: torch.Tensor | None = None
        hmap: torch.Tensor | None = None
        whole = (final and disk_pos.numel() == n and n > 0 and relocate is None
                 and bool((disk_pos == torch.arange(n)).all()))  # every row from disk, in order: no assembly copy
        if whole:
            out = torch.empty(0)
        elif final:
            out = torch.empty((n, self.feat_dim), dtype=self.dtype, device=self.device)
        else:
            if dev_pos.numel():
                host_pos = torch.nonzero(~dev_mask).flatten()  # type: ignore[operator]
                hmap = torch.full((n,), -1, dtype=torch.int64)
                hmap[host_pos] = torch.arange(host_pos.numel())
            n_h = n if host_pos is None else host_pos.numel()
            out = torch.empty((n_h, self.feat_dim), dtype=self.dtype, pin_memory=True)
        self._check_budget(0 if self.device.type == "cuda" and final else n * rb, 0 if whole else disk_pos.numel() * rb,
                           inflight)
        if whole:
            rows = self._read_disk(ids, disk_pos, segment, delta, None)
            if rows.device != self.device:
                rows = rows.to(self.device)
                delta.add_bytes("h2d", n * rb)
            if self.lookahead is not None and admit_pos.numel():
                self.lookahead[admit_slots.to(self.lookahead.device)] = rows[admit_pos.to(rows.device)].to(self.lookahead.device)
                self.phys[admit_slots] = ids[admit_pos]
            return Part(n, rows, True, None, _EMPTY, _EMPTY, delta)

        def put(pos: torch.Tensor, rows: torch.Tensor) -> None:
            where = pos if hmap is None else hmap[pos]
            out[where.to(out.device)] = rows.to(out.device)

        if final and dev_pos.numel():
            assert st is not None
            out[dev_pos.to(self.device)] = st.device_rows[static_slot[dev_pos].to(self.device)]
            delta.hit("device", dev_pos.numel(), "device")
        if st is not None and st.n_host:
            hpos = torch.nonzero(static_slot >= n_dev).flatten()
            if hpos.numel():
                put(hpos, st.host_rows[static_slot[hpos] - n_dev])
                delta.hit("host", hpos.numel(), "host")
                if final and on_cuda:
                    delta.add_bytes("h2d", hpos.numel() * rb)
        la = self.lookahead
        if la is not None and relocate is not None:
            src, dst = relocate
            la[dst.to(la.device)] = la[src.to(la.device)]
            self.phys[dst] = self.phys[src]
        if la is not None and la_pos.numel():
            put(la_pos, la[la_slots.to(la.device)])
            delta.hit("lookahead", la_pos.numel(), "device" if la.is_cuda else "host")
        if disk_pos.numel():
            self._read_disk(ids, disk_pos, segment, delta, put)
        if la is not None and admit_pos.numel():
            where = admit_pos if hmap is None else hmap[admit_pos]
            la[admit_slots.to(la.device)] = out[where.to(out.device)].to(la.device)
            self.phys[admit_slots] = ids[admit_pos]
        return Part(n, out, final, host_pos, dev_pos, static_slot[dev_pos] if dev_pos.numel() else _EMPTY, delta)

    def _read_disk(self, ids: torch.Tensor, disk_pos: torch.Tensor, segment: int | None, delta: BatchDelta,
                   put: object) -> torch.Tensor:
        src = self.segments if segment is not None else self.rows_src
        assert src is not None, "a packed segment was planned but no packed file is open"
        bytes0, ops0 = src.counter.snapshot()
        read0 = src.read_s
        k0 = kernel_io()
        if segment is not None:
            assert isinstance(src, SegmentSource)
            rows = src.rows(segment, buffer_bytes=self.read_buffer_bytes)
        else:
            rows = self.rows_src.rows(ids[disk_pos], buffer_bytes=self.read_buffer_bytes)
        delta.kernel = kernel_io() - k0
        bytes1, ops1 = src.counter.snapshot()
        delta.disk_own, delta.disk_ops = bytes1 - bytes0, ops1 - ops0
        delta.disk_read_s = src.read_s - read0
        delta.disk_rows = disk_pos.numel()
        if put is not None:
            put(disk_pos, rows)  # type: ignore[operator]
            delta.add_bytes("device" if rows.is_cuda else "host", rows.numel() * rows.element_size())
        return rows

    def finalize(self, part: Part) -> torch.Tensor:
        """The finished ``[n, D]`` rows on the compute device (one host-to-device copy, then the device tier)."""
        if part.final:
            return part.rows
        staged = part.rows.to(self.device, non_blocking=True)
        part.delta.add_bytes("h2d", part.rows.numel() * part.rows.element_size())
        if part.host_pos is None:
            return staged
        assert self.static is not None
        out = torch.empty((part.n, self.feat_dim), dtype=self.dtype, device=self.device)
        out[part.host_pos.to(self.device)] = staged
        out[part.dev_pos.to(self.device)] = self.static.device_rows[part.dev_slots.to(self.device)]
        part.delta.hit("device", part.dev_pos.numel(), "device")
        return out
