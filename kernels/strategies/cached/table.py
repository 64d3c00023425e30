"""Id-to-slot lookup tables for a device cache: dense (one entry per node) or hashed (open addressing).

A table maps a node id to the slot of the cache buffer holding its row, or -1 when the row is not cached. Both
tables are vectorised torch code that runs on whichever device holds them (the compute GPU, or the CPU), with no
Python loop over ids: the dense table is one gather; the hash table probes every id of a batch at once, one probe
step per loop iteration (the loop runs as many times as the longest probe chain, a handful at load factor <= 0.5).
"""

from __future__ import annotations

import abc
from typing import Literal

import torch

__all__ = ["DenseSlotTable", "HashSlotTable", "LookupKind", "SlotTable", "dense_table_bytes", "make_slot_table"]

LookupKind = Literal["auto", "dense", "hash"]

_EMPTY = -1
_TOMB = -2
_MULT = 2654435761  # Knuth's multiplicative constant; id * _MULT stays below 2**63 for ids below 2**31


def dense_table_bytes(num_nodes: int) -> int:
    """Bytes of a dense id-to-slot table over ``num_nodes`` ids (int32 entries)."""
    return 4 * int(num_nodes)


class SlotTable(abc.ABC):
    """Map node ids (int64) to cache slots (int64, -1 = not cached). Ids passed to ``insert`` must be absent."""

    kind: str = "abstract"

    @abc.abstractmethod
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Slot of each id (int64, same shape and device as ``ids``), -1 where the id is not cached."""

    @abc.abstractmethod
    def insert(self, ids: torch.Tensor, slots: torch.Tensor) -> None:
        """Record ``ids[i] -> slots[i]``; the ids must be distinct and not in the table."""

    @abc.abstractmethod
    def remove(self, ids: torch.Tensor) -> None:
        """Forget ``ids`` (distinct ids that are in the table)."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """Bytes the table occupies on its device."""


class DenseSlotTable(SlotTable):
    """One int32 entry per node id: a lookup is a single gather (4 bytes x num_nodes of memory)."""

    kind = "dense"

    def __init__(self, num_nodes: int, *, device: torch.device) -> None:
        self.table = torch.full((int(num_nodes),), _EMPTY, dtype=torch.int32, device=device)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids].to(torch.int64)

    def insert(self, ids: torch.Tensor, slots: torch.Tensor) -> None:
        self.table[ids] = slots.to(torch.int32)

    def remove(self, ids: torch.Tensor) -> None:
        self.table[ids] = _EMPTY

    @property
    def nbytes(self) -> int:
        return self.table.numel() * self.table.element_size()


class HashSlotTable(SlotTable):
    """Open addressing with linear probing, sized to a power of two >= 2 x ``capacity`` (load factor <= 0.5).

    Keys are int64 ids (-1 empty, -2 deleted), values int32 slots. Memory is 12 bytes per bucket, independent of the
    number of nodes: the choice when a dense table would not fit. Deleted buckets are reclaimed by a rebuild once
    live plus deleted buckets pass three quarters of the table.
    """

    kind = "hash"

    def __init__(self, capacity: int, *, device: torch.device) -> None:
        size = 16
        while size < 2 * max(int(capacity), 1):
            size *= 2
        self.size = size
        self.mask = size - 1
        self.keys = torch.full((size,), _EMPTY, dtype=torch.int64, device=device)
        self.vals = torch.full((size,), _EMPTY, dtype=torch.int32, device=device)
        self.live = 0
        self.tombs = 0

    def _home(self, ids: torch.Tensor) -> torch.Tensor:
        return ((ids * _MULT) >> 13) & self.mask

    def _find(self, ids: torch.Tensor) -> torch.Tensor:
        """Bucket holding each id, -1 where absent."""
        where = torch.full_like(ids, -1)
        active = torch.arange(ids.numel(), device=ids.device)
        pos = self._home(ids)
        for _ in range(self.size):
            if active.numel() == 0:
                break
            k = self.keys[pos]
            found = k == ids[active]
            where[active[found]] = pos[found]
            go_on = ~found & (k != _EMPTY)
            active, pos = active[go_on], (pos[go_on] + 1) & self.mask
        return where

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        where = self._find(ids)
        out = torch.full_like(ids, -1)
        hit = where >= 0
        out[hit] = self.vals[where[hit]].to(torch.int64)
        return out

    def insert(self, ids: torch.Tensor, slots: torch.Tensor) -> None:
        n = ids.numel()
        if n == 0:
            return
        if self.live + self.tombs + n > (3 * self.size) // 4:
            self._rebuild()
        if self.live + n > self.size // 2:
            raise ValueError(f"hash table of {self.size} buckets holds at most {self.size // 2} ids")
        slots = slots.to(torch.int32)
        pending = torch.arange(n, device=ids.device)
        pos = self._home(ids)
        claim = torch.empty(self.size, dtype=torch.int64, device=ids.device)
        while pending.numel():
            k = self.keys[pos]
            free = (k == _EMPTY) | (k == _TOMB)
            # several ids may want the same free bucket: the lowest index wins, the others probe on
            claim.fill_(n)
            claim.scatter_reduce_(0, pos[free], pending[free], reduce="amin")
            won = torch.zeros_like(free)
            won[free] = claim[pos[free]] == pending[free]
            wpos = pos[won]
            self.tombs -= int((self.keys[wpos] == _TOMB).sum())
            self.keys[wpos] = ids[pending[won]]
            self.vals[wpos] = slots[pending[won]]
            pending, pos = pending[~won], (pos[~won] + 1) & self.mask
        self.live += n

    def remove(self, ids: torch.Tensor) -> None:
        if ids.numel() == 0:
            return
        where = self._find(ids)
        where = where[where >= 0]
        self.keys[where] = _TOMB
        self.vals[where] = _EMPTY
        self.live -= int(where.numel())
        self.tombs += int(where.numel())

    def _rebuild(self) -> None:
        keep = self.keys >= 0
        ids, slots = self.keys[keep].clone(), self.vals[keep].clone()
        self.keys.fill_(_EMPTY)
        self.vals.fill_(_EMPTY)
        self.live = self.tombs = 0
        self.insert(ids, slots)

    @property
    def nbytes(self) -> int:
        return self.size * (self.keys.element_size() + self.vals.element_size())


def make_slot_table(kind: LookupKind, *, num_nodes: int, capacity: int, budget_bytes: int,
                    device: torch.device) -> SlotTable:
    """A table for ``capacity`` cached rows of ``num_nodes`` ids.

    ``auto`` picks the dense table unless it would cost more memory than ``budget_bytes`` (the bytes of the cached
    rows it indexes) or, on a GPU, more than the memory left free after the rows; then the hash table.
    """
    if kind not in ("auto", "dense", "hash"):
        raise ValueError(f"lookup={kind!r}; valid: auto, dense, hash")
    if kind == "auto":
        dense = dense_table_bytes(num_nodes)
        fits = dense <= max(budget_bytes, 0)
        if fits and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            fits = dense + budget_bytes <= free
        kind = "dense" if fits else "hash"
    if kind == "dense":
        return DenseSlotTable(num_nodes, device=device)
    return HashSlotTable(capacity, device=device)
