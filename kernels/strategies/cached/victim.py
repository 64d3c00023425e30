"""The victim buffer (LSM-GNN): rows evicted from the device cache, kept in a pinned host ring for later batches.

``VictimIndex`` tracks which ids the ring holds (shared with the simulator); ``VictimBuffer`` adds the rows. The ring
is first-in first-out: pushing ``k`` evicted rows overwrites the ``k`` oldest entries. Order within a batch (strategy
and simulator alike): the batch's device-cache misses are looked up in the ring first, then the batch's evictions are
pushed, in the order the policy evicted them.
"""

from __future__ import annotations

import torch

from .table import DenseSlotTable

__all__ = ["VictimBuffer", "VictimIndex"]


class VictimIndex:
    """Which ids a ring of ``capacity`` rows holds, and where: a dense id-to-position table plus the ring's ids."""

    def __init__(self, capacity: int, num_nodes: int, *, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError("victim buffer capacity must be >= 1 row")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.where = DenseSlotTable(num_nodes, device=self.device)
        self.ring_ids = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        self.head = 0

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Ring position of each id, -1 where the ring does not hold it."""
        return self.where.lookup(ids.to(self.device))

    def push(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append distinct ``ids`` (oldest entries are overwritten); returns ``(kept positions into ids, ring positions)``.

        When more ids than the ring holds are pushed at once, only the last ``capacity`` are kept.
        """
        ids = ids.to(device=self.device, dtype=torch.int64)
        k = int(ids.numel())
        keep = torch.arange(max(0, k - self.capacity), k, device=self.device)
        ids = ids[keep]
        n = int(ids.numel())
        if n == 0:
            return keep, keep
        pos = (self.head + torch.arange(n, device=self.device)) % self.capacity
        # an id already in the ring moves: its old entry dies
        old = self.where.lookup(ids)
        moved = old >= 0
        self.ring_ids[old[moved]] = -1
        self.where.remove(ids[moved])
        # entries being overwritten lose their mapping
        gone = self.ring_ids[pos]
        gone = gone[gone >= 0]
        self.where.remove(gone)
        self.ring_ids[pos] = ids
        self.where.insert(ids, pos)
        self.head = (self.head + n) % self.capacity
        return keep, pos

    @property
    def size(self) -> int:
        """Ids the ring holds now."""
        return int((self.ring_ids >= 0).sum())


class VictimBuffer:
    """A ``VictimIndex`` (on the compute device) plus the rows, in pinned host memory when CUDA is present.

    ``read(positions, device)`` copies ring rows to the compute device (a host-to-device transfer);
    ``write(positions, rows)`` copies evicted rows from the device into the ring (a device-to-host transfer).
    """

    def __init__(self, capacity: int, num_nodes: int, *, feat_dim: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.index = VictimIndex(capacity, num_nodes, device=device)
        pinned = device.type == "cuda"
        self.rows = torch.empty((capacity, feat_dim), dtype=dtype, pin_memory=pinned)
        self.pinned = pinned
        self._staging: torch.Tensor | None = None
        self._staged: torch.cuda.Event | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the host ring."""
        return self.rows.numel() * self.rows.element_size()

    def read(self, positions: torch.Tensor, device: torch.device, *, stream: torch.cuda.Stream | None = None,
             start: torch.cuda.Event | None = None) -> tuple[torch.Tensor, torch.cuda.Event | None]:
        """Rows at ring ``positions`` on ``device``, and (CUDA) the event their copy completes at.

        On CUDA the rows are gathered on the CPU into pinned staging and copied on ``stream`` (default: the current
        stream); the caller makes its stream wait on the event before using them. With ``start`` (an event created
        with ``enable_timing=True``) the copy is bracketed by ``start`` and the returned event, so
        ``start.elapsed_time(done)`` is the copy's milliseconds.
        """
        positions = positions.cpu()
        if device.type != "cuda":
            return torch.index_select(self.rows, 0, positions), None
        n = int(positions.numel())
        if self._staged is not None:
            self._staged.synchronize()  # the previous copy out of the staging buffer is done
        if self._staging is None or self._staging.shape[0] < n:
            self._staging = torch.empty((max(n, 1024), self.rows.shape[1]), dtype=self.rows.dtype, pin_memory=True)
        staged = self._staging[:n]
        torch.index_select(self.rows, 0, positions, out=staged)
        stream = stream if stream is not None else torch.cuda.current_stream(device)
        with torch.cuda.stream(stream):
            if start is not None:
                start.record(stream)
            out = staged.to(device, non_blocking=True)
            done = torch.cuda.Event(enable_timing=start is not None)
            done.record(stream)
        self._staged = done
        return out, done

    def write(self, positions: torch.Tensor, rows: torch.Tensor) -> None:
        """Store ``rows`` (any device) at ring ``positions``."""
        if positions.numel():
            self.rows[positions.cpu()] = rows.to("cpu")
