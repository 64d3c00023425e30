"""Look-ahead (Belady/MIN) caching over a known trace of batches: the optimal cache, used by out-of-core
(Ginex-style superbatch cache) and by the cached strategy's ``belady`` policy and its simulator.

A trace is a sequence of batches, each a 1-D int64 tensor of the *unique* ids the batch needs. Time advances one
batch at a time. After batch ``t`` is served, the cache keeps the ``capacity`` ids whose next use is soonest among
what it held and what batch ``t`` brought (``admit="bypass"``, optimal when a miss need not be cached), or it must
hold all of batch ``t`` and evicts the farthest-next-use others (``admit="always"``, textbook MIN; the batch must fit).
Everything is vectorised: the cost per batch is O((capacity + batch) log) torch work, no Python loop over ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["BeladyCache", "BeladyStep", "belady_misses", "next_uses"]

Admit = Literal["bypass", "always"]


def next_uses(trace: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """For each batch ``t`` and each id in it, the index of the next batch that needs the id (``len(trace)`` if none).

    Returns one int64 tensor per batch, aligned with the batch's ids.
    """
    if not trace:
        return []
    sizes = [int(b.numel()) for b in trace]
    ids = torch.cat([b.to(torch.int64).cpu() for b in trace])
    when = torch.repeat_interleave(torch.arange(len(trace)), torch.tensor(sizes))
    horizon = len(trace)
    if ids.numel() == 0:
        return [torch.empty(0, dtype=torch.int64) for _ in trace]
    # stable sort by id keeps batch order within an id; the next element with the same id is its next use
    order = torch.argsort(ids, stable=True)
    sid, swhen = ids[order], when[order]
    nxt = torch.full_like(swhen, horizon)
    same = sid[1:] == sid[:-1]
    nxt[:-1] = torch.where(same, swhen[1:], torch.full_like(swhen[1:], horizon))
    out = torch.empty_like(nxt)
    out[order] = nxt
    return list(torch.split(out, sizes))


@dataclass(frozen=True)
class BeladyStep:
    """What one batch did to the cache: which of its ids hit, and which ids were admitted into which slots."""

    hit: torch.Tensor  # bool [batch]: id was cached before this batch
    admitted_ids: torch.Tensor  # int64 [a]: ids newly cached after this batch
    admitted_slots: torch.Tensor  # int64 [a]: the slot each admitted id now occupies
    evicted_ids: torch.Tensor  # int64 [e]: ids that left the cache (their slots were reused or freed)


class BeladyCache:
    """The optimal cache of ``capacity`` ids over a known trace; ``step()`` serves the next batch.

    Tracks a slot per cached id (``slot_of(ids)``) so a strategy can keep the rows in a buffer of ``capacity`` rows.
    """

    def __init__(self, capacity: int, trace: Sequence[torch.Tensor], *, num_nodes: int, admit: Admit = "bypass"):
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        if admit not in ("bypass", "always"):
            raise ValueError(f"admit={admit!r}; valid: bypass, always")
        self.capacity = int(capacity)
        self.admit = admit
        self.trace = [b.to(torch.int64).cpu() for b in trace]
        self._next = next_uses(self.trace)
        self.t = 0
        self._slot = torch.full((num_nodes,), -1, dtype=torch.int64)  # id -> slot
        self._id = torch.full((self.capacity,), -1, dtype=torch.int64)  # slot -> id
        self._when = torch.full((self.capacity,), len(self.trace), dtype=torch.int64)  # slot -> next use

    def slot_of(self, ids: torch.Tensor) -> torch.Tensor:
        """The slot of each id, -1 where it is not cached."""
        return self._slot[ids.to(torch.int64).cpu()]

    @property
    def cached_ids(self) -> torch.Tensor:
        """Ids in the cache now."""
        return self._id[self._id >= 0]

    def step(self) -> BeladyStep:
        """Serve batch ``t`` (count its hits) and update the cache for what comes after it."""
        if self.t >= len(self.trace):
            raise IndexError("the trace is exhausted")
        ids, nxt = self.trace[self.t], self._next[self.t]
        t = self.t
        self.t += 1
        slots = self._slot[ids]
        hit = slots >= 0
        if self.capacity == 0:
            return BeladyStep(hit, *(torch.empty(0, dtype=torch.int64),) * 3)
        # refresh next-use of hits; the cache's candidates are its current ids and this batch's misses
        self._when[slots[hit]] = nxt[hit]
        occupied = self._id >= 0
        horizon = len(self.trace)
        miss_ids, miss_next = ids[~hit], nxt[~hit]
        cand_ids = torch.cat([self._id[occupied], miss_ids])
        cand_next = torch.cat([self._when[occupied], miss_next])
        if self.admit == "always":
            if ids.numel() > self.capacity:
                raise ValueError(f"batch {t} has {ids.numel()} ids, more than the capacity {self.capacity}")
            # this batch's ids must stay: rank them first, then the rest by next use
            in_batch = torch.zeros(cand_ids.numel(), dtype=torch.bool)
            in_batch[: int(occupied.sum())] = torch.isin(self._id[occupied], ids)
            in_batch[int(occupied.sum()):] = True
            key = torch.where(in_batch, torch.full_like(cand_next, -1), cand_next)
            keep_n = min(self.capacity, cand_ids.numel())
        else:
            key = cand_next
            keep_n = min(self.capacity, int((cand_next < horizon).sum()))
        keep = torch.topk(key, keep_n, largest=False, sorted=False).indices if keep_n else key.new_empty(0)
        keep_mask = torch.zeros(cand_ids.numel(), dtype=torch.bool)
        keep_mask[keep] = True
        n_old = int(occupied.sum())
        old_slots = torch.nonzero(occupied).flatten()
        evicted_slots = old_slots[~keep_mask[:n_old]]
        evicted_ids = self._id[evicted_slots].clone()
        self._slot[evicted_ids] = -1
        self._id[evicted_slots] = -1
        self._when[evicted_slots] = horizon
        new_pos = torch.nonzero(keep_mask[n_old:]).flatten()
        admitted_ids = miss_ids[new_pos]
        free = torch.nonzero(self._id < 0).flatten()[: admitted_ids.numel()]
        self._id[free] = admitted_ids
        self._when[free] = miss_next[new_pos]
        self._slot[admitted_ids] = free
        return BeladyStep(hit, admitted_ids, free, evicted_ids)


def belady_misses(trace: Sequence[torch.Tensor], capacity: int, *, num_nodes: int, admit: Admit = "bypass") -> int:
    """Misses of the optimal cache over ``trace`` (each batch's unique ids)."""
    cache = BeladyCache(capacity, trace, num_nodes=num_nodes, admit=admit)
    return sum(int((~cache.step().hit).sum()) for _ in range(len(trace)))
