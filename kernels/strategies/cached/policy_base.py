"""The cache-policy contract shared by the ``cached`` strategy and the simulator.

A policy sees one batch of *unique* node ids at a time (``step``). An id is a hit when it was cached before the
batch; after the batch the policy may admit some of the batch's misses into free or evicted slots. The strategy
moves rows as the returned ``PolicyStep`` says; the simulator only counts. Both call the same ``step`` on the same
ids, so their hit counts are equal by construction.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import torch

from .table import DenseSlotTable, SlotTable

__all__ = ["CachePolicy", "PlanError", "PolicyStep"]


class PlanError(RuntimeError):
    """A look-ahead policy was stepped without a plan, past its plan, or with ids other than the planned ones."""


@dataclass(frozen=True)
class PolicyStep:
    """What one batch did. ``hit``/``slots`` are aligned with the batch's ids; admissions index into them."""

    hit: torch.Tensor  # bool [n]: cached before this batch
    slots: torch.Tensor  # int64 [n]: slot of each id before this batch, -1 for misses
    admitted: torch.Tensor  # int64 [a]: positions (into the batch's ids) of misses cached after this batch
    admitted_slots: torch.Tensor  # int64 [a]: the slot each admitted id now occupies
    evicted_ids: torch.Tensor  # int64 [e]: ids that left the cache after this batch, in eviction order
    evicted_slots: torch.Tensor  # int64 [e]: the slots they held (rows still there until admissions overwrite)

    @property
    def num_hits(self) -> int:
        """Ids of the batch that hit."""
        return int(self.hit.sum())


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64, device=device)


class CachePolicy(abc.ABC):
    """A cache of ``capacity`` slots over ids ``[0, num_nodes)``, all state on ``device``.

    Subclasses implement ``_update(ids, slots, hit)``, deciding admissions and evictions after a batch with
    vectorised torch operations (no Python loop over ids).
    """

    name: ClassVar[str] = "abstract"
    dynamic: ClassVar[bool] = False  # True when contents change while running

    def __init__(self, capacity: int, num_nodes: int, *, device: torch.device | str = "cpu",
                 table: SlotTable | None = None) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = int(min(capacity, num_nodes))
        self.num_nodes = int(num_nodes)
        self.device = torch.device(device)
        self.table = table if table is not None else DenseSlotTable(num_nodes, device=self.device)
        self.slot_ids = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        self.occupied = 0
        self.t = 0  # batches served so far

    # ---- queries ----------------------------------------------------------------------------------------------
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Slot of each id (-1 when not cached); does not count as an access."""
        return self.table.lookup(ids)

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, slots)`` of every cached row, by slot."""
        slots = torch.nonzero(self.slot_ids >= 0).flatten()
        return self.slot_ids[slots], slots

    @property
    def state_bytes(self) -> int:
        """Bytes of policy state on the device (lookup table, slot map and per-policy arrays)."""
        return self.table.nbytes + self.slot_ids.numel() * 8 + self._extra_state_bytes()

    def _extra_state_bytes(self) -> int:
        return 0

    # ---- stepping ---------------------------------------------------------------------------------------------
    def step(self, ids: torch.Tensor) -> PolicyStep:
        """Serve one batch of unique int64 ids (on ``device``): report hits, then admit/evict for what follows."""
        ids = ids.to(device=self.device, dtype=torch.int64)
        slots = self.table.lookup(ids) if ids.numel() else _empty(self.device)
        hit = slots >= 0
        if self.capacity == 0:
            admitted, admitted_slots, evicted_ids, evicted_slots = (_empty(self.device),) * 4
            self._observe(ids, slots, hit)
        else:
            admitted, admitted_slots, evicted_ids, evicted_slots = self._update(ids, slots, hit)
        self.t += 1
        return PolicyStep(hit, slots, admitted, admitted_slots, evicted_ids, evicted_slots)

    @abc.abstractmethod
    def _update(self, ids: torch.Tensor, slots: torch.Tensor,
                hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(admitted positions, their slots, evicted ids, evicted slots)`` after batch ``self.t``."""

    def _observe(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> None:
        """Record accesses when no admission is possible (capacity 0)."""

    # ---- helpers for subclasses -------------------------------------------------------------------------------
    def fill(self, ids: torch.Tensor) -> torch.Tensor:
        """Place distinct, uncached ``ids`` into free slots (lowest first; at most the free count); their slots."""
        ids = ids.to(device=self.device, dtype=torch.int64)[: self.capacity - self.occupied]
        slots = self._free_slots(ids.numel())
        self._place(ids, slots)
        return slots

    def _free_slots(self, k: int) -> torch.Tensor:
        if k <= 0 or self.occupied >= self.capacity:
            return _empty(self.device)
        return torch.nonzero(self.slot_ids < 0).flatten()[:k]

    def _place(self, ids: torch.Tensor, slots: torch.Tensor) -> None:
        if ids.numel():
            self.table.insert(ids, slots)
            self.slot_ids[slots] = ids
            self.occupied += int(ids.numel())

    def _release(self, slots: torch.Tensor) -> torch.Tensor:
        ids = self.slot_ids[slots].clone()
        if ids.numel():
            self.table.remove(ids)
            self.slot_ids[slots] = -1
            self.occupied -= int(ids.numel())
        return ids

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, occupied={self.occupied}, t={self.t})"
