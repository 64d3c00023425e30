"""Dynamic cache policies at batch granularity: ``lru``, ``clock`` and ``hybrid`` (static importance + reuse).

Granularity (the same in the strategy and the simulator): a batch's unique ids are looked up together, so an id
either hits (cached before the batch) or misses; then the policy updates once for the whole batch. A batch never
evicts its own hits or its own admissions. When a batch misses more ids than fit, the earliest misses in batch order
are admitted first (the batch's ids come seeds first, in first-occurrence order). ``lru`` and ``clock`` never evict
a batch's own hits or admissions; ``hybrid`` ranks a batch's hits with every other resident.
"""

from __future__ import annotations

import math

import torch

from .importance import rank_by_importance
from .policy_base import CachePolicy, PlanError
from .table import SlotTable

__all__ = ["AUTO_WINDOW", "MAX_WINDOW", "ClockPolicy", "HybridPolicy", "LruPolicy"]

_Update = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
_FAR = 2**31 - 1  # "not in the look-ahead window"
AUTO_WINDOW = 4.0  # auto look-ahead: cache-fulls of requests the window holds (tuned on tune-200k)
MAX_WINDOW = 256  # batches


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64, device=device)


class _RecencyPolicy(CachePolicy):
    """Admission shared by ``lru`` and ``clock``: mark the batch's hits, admit up to ``capacity - hits`` misses
    (earliest first) into free slots, then into slots the subclass picks as victims, and mark the admissions."""

    def _mark(self, slots: torch.Tensor) -> None:
        """Record that ``slots`` were used by the current batch."""
        raise NotImplementedError

    def _victims(self, need: int, free: torch.Tensor, hit_slots: torch.Tensor) -> torch.Tensor:
        """``need`` occupied slots to evict, never this batch's hits nor the ``free`` slots just taken."""
        raise NotImplementedError

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> _Update:
        dev = self.device
        hit_slots = slots[hit]
        self._mark(hit_slots)
        miss_pos = torch.nonzero(~hit).flatten()
        n_admit = min(int(miss_pos.numel()), self.capacity - int(hit_slots.numel()))
        if n_admit <= 0:
            return _empty(dev), _empty(dev), _empty(dev), _empty(dev)
        admit_pos = miss_pos[:n_admit]
        free = self._free_slots(n_admit)
        need = n_admit - int(free.numel())
        ev_slots, ev_ids = _empty(dev), _empty(dev)
        if need > 0:
            ev_slots = self._victims(need, free, hit_slots)
            ev_ids = self._release(ev_slots)
        new_slots = torch.cat([free, ev_slots])
        self._place(ids[admit_pos], new_slots)
        self._mark(new_slots)
        return admit_pos, new_slots, ev_ids, ev_slots


class LruPolicy(_RecencyPolicy):
    """Least recently used, by the index of the last batch that touched each slot.

    After batch ``t``: its hits are stamped ``t``; up to ``capacity - hits`` misses are admitted (free slots first),
    evicting the residents with the oldest stamps (ties: lower slot first), found with one ``topk``.
    """

    name = "lru"
    dynamic = True

    def __init__(self, capacity: int, num_nodes: int, *, device: torch.device | str = "cpu",
                 table: SlotTable | None = None) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        self.stamp = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)

    def _extra_state_bytes(self) -> int:
        return self.stamp.numel() * 8

    def _mark(self, slots: torch.Tensor) -> None:
        self.stamp[slots] = self.t

    def _victims(self, need: int, free: torch.Tensor, hit_slots: torch.Tensor) -> torch.Tensor:
        # hits carry stamp t, the newest: with at most capacity - hits admissions they are never the oldest
        occ = torch.nonzero(self.slot_ids >= 0).flatten()
        key = self.stamp[occ] * self.capacity + occ  # unique keys: the order is the same on every device
        return occ[torch.topk(key, need, largest=False, sorted=True).indices]


class ClockPolicy(_RecencyPolicy):
    """CLOCK (second chance) with a reference bit per slot and a hand, the sweep vectorised per batch.

    After batch ``t``: hits set their bit; admissions take free slots first; the rest come from a sweep that starts
    at the hand and takes slots whose bit is clear, clearing the bits it passes. If one full turn finds too few, a
    second turn (all bits now clear) takes the next slots that are not this batch's hits. Admitted slots get their
    bit set; the hand stops one past the last victim.
    """

    name = "clock"
    dynamic = True

    def __init__(self, capacity: int, num_nodes: int, *, device: torch.device | str = "cpu",
                 table: SlotTable | None = None) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        self.ref = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self.hand = 0

    def _extra_state_bytes(self) -> int:
        return self.ref.numel()

    def _mark(self, slots: torch.Tensor) -> None:
        self.ref[slots] = True

    def _victims(self, need: int, free: torch.Tensor, hit_slots: torch.Tensor) -> torch.Tensor:
        cap, dev = self.capacity, self.device
        order = (self.hand + torch.arange(cap, device=dev)) % cap
        base = self.slot_ids >= 0
        base[free] = False  # slots just taken from the free list are new entries, not candidates
        base_o = base[order]
        first = torch.nonzero(base_o & ~self.ref[order]).flatten()
        if first.numel() >= need:
            take = first[:need]
            last = int(take[-1])
            self.ref[order[: last + 1]] = False
        else:
            self.ref.zero_()  # a full turn passed every slot
            hit_mask = torch.zeros(cap, dtype=torch.bool, device=dev)
            hit_mask[hit_slots] = True
            taken = torch.zeros(cap, dtype=torch.bool, device=dev)
            taken[first] = True
            second = torch.nonzero(base_o & ~taken & ~hit_mask[order]).flatten()[: need - first.numel()]
            take = torch.cat([first, second])
            last = int(second[-1])
        self.hand = (self.hand + last + 1) % cap
        return order[take]


class HybridPolicy(CachePolicy):
    """Static importance combined with dynamic next-reuse distance, after LSM-GNN: keep the rows reused soonest.

    Reuse distance of an id after batch ``t``, in batches:
    - *known* when a hinted upcoming batch within the look-ahead window (``W = lookahead`` batches after ``t``)
      needs it: the distance to the first such batch (1..W). The caller hints batches as its sampler produces them
      (``hint``); the strategy's ``load()`` samples ``W`` batches ahead, the simulator reads them from the trace.
      ``lookahead=-1`` (auto) sets ``W = ceil(AUTO_WINDOW x capacity / rows of the first batch)``, at most
      ``MAX_WINDOW``: a window of about four cache-fulls of requests. Without hints the window is empty;
    - *estimated* otherwise: ``W + d`` with ``d = (K0 + T) / (K0 * p0 + n)``, where ``p0`` is the static prior
      (per-batch access probability from the importance score), ``n`` the batches that needed the id so far, ``T``
      the batches seen and ``K0`` the prior's weight in batches; ``recency`` in [-1, 1] then shifts ``d`` by
      ``-recency * min(idle batches, d)`` (> 0: rows idle for a while are expected back sooner; < 0: later).
    After each batch the ``capacity`` ids with the smallest distance among residents and the batch's misses stay
    (ties: residents first, then batch order); a miss that does not beat a resident bypasses the cache. The cache
    starts filled with the ids of highest prior.
    """

    name = "hybrid"
    dynamic = True

    def __init__(self, capacity: int, num_nodes: int, *, prior: torch.Tensor, prior_strength: float = 8.0,
                 recency: float = 0.0, lookahead: int = 0, scale_prior_by_first_batch: bool = False,
                 device: torch.device | str = "cpu", table: SlotTable | None = None, prefill: bool = True) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        if prior.numel() != num_nodes:
            raise ValueError(f"prior must have one value per node ({num_nodes}), got {prior.numel()}")
        if prior_strength < 0:
            raise ValueError("prior_strength must be >= 0")
        if not -1.0 <= recency <= 1.0:
            raise ValueError("recency must be in [-1, 1]")
        if lookahead < -1:
            raise ValueError("lookahead must be >= 0, or -1 for auto")
        self.k0 = float(prior_strength)
        self.recency = float(recency)
        self.lookahead = int(lookahead)
        self.p0 = prior.to(device=self.device, dtype=torch.float64).clone()
        self._scale_pending = scale_prior_by_first_batch
        self.count = torch.zeros(num_nodes, dtype=torch.int32, device=self.device)
        self.last = torch.full((num_nodes,), -1, dtype=torch.int64, device=self.device)
        self._future: list[torch.Tensor] = []
        self._soonest = torch.full((num_nodes,), _FAR, dtype=torch.int32, device=self.device) if lookahead else None
        if lookahead == -1 and self.capacity == 0:
            self.lookahead = 0
        if prefill and self.capacity:
            top = rank_by_importance(self.p0)[: self.capacity]
            self.fill(top)

    def _extra_state_bytes(self) -> int:
        window = self._soonest.numel() * 4 if self._soonest is not None else 0
        return self.p0.numel() * 8 + self.count.numel() * 4 + self.last.numel() * 8 + window

    def _resolve(self, rows: int) -> None:
        """Fix an auto window from the rows of the first batch seen."""
        if self.lookahead == -1:
            self.lookahead = min(MAX_WINDOW, max(1, math.ceil(AUTO_WINDOW * self.capacity / max(rows, 1))))

    def hint(self, batches: list[torch.Tensor]) -> None:
        """Upcoming batches (unique ids each), in order, starting with the next batch to be stepped."""
        for b in batches:
            self._resolve(int(b.numel()))
            if self.lookahead:
                self._future.append(b.to(device=self.device, dtype=torch.int64))

    def _window(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Ids of the look-ahead window after the current batch, the batch distance (1..W) of each, and W."""
        window = self._future[: self.lookahead]
        if not window:
            e = torch.empty(0, dtype=torch.int64, device=self.device)
            return e, e.to(torch.int32), 0
        ids = torch.cat(window)
        dist = torch.repeat_interleave(torch.arange(1, len(window) + 1, dtype=torch.int32, device=self.device),
                                       torch.tensor([b.numel() for b in window], device=self.device))
        return ids, dist, len(window)

    def _keys(self, ids: torch.Tensor, width: int) -> torch.Tensor:
        seen = float(self.t + 1)
        evidence = self.k0 * self.p0[ids] + self.count[ids].to(torch.float64)
        dist = torch.where(evidence > 0, (self.k0 + seen) / evidence.clamp_min(1e-300),
                           torch.full_like(evidence, float("inf")))
        if self.recency != 0.0:
            last = self.last[ids]
            idle = torch.where(last >= 0, (self.t - last).to(torch.float64), torch.zeros_like(dist))
            dist = dist - self.recency * torch.minimum(idle, dist)
        dist = dist + width
        if self._soonest is not None and width:
            known = self._soonest[ids]
            dist = torch.where(known < _FAR, known.to(torch.float64), dist)
        return dist

    def _observe(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> None:
        self._resolve(int(ids.numel()))
        if self._future:
            front = self._future.pop(0)
            if not torch.equal(front, ids):
                raise PlanError("hybrid: the batch being served is not the next hinted batch")
        if self._scale_pending and ids.numel():
            # a degree prior is relative: scale it so that it sums to the rows of the first batch
            total = float(self.p0.sum())
            if total > 0:
                self.p0 *= ids.numel() / total
            self._scale_pending = False
        self.count[ids] += 1
        self.last[ids] = self.t

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> _Update:
        self._observe(ids, slots, hit)
        miss_pos = torch.nonzero(~hit).flatten()
        res_slots = torch.nonzero(self.slot_ids >= 0).flatten()
        win_ids, win_dist, width = self._window()
        if width:
            assert self._soonest is not None
            self._soonest.scatter_reduce_(0, win_ids, win_dist, reduce="amin")
        keys = torch.cat([self._keys(self.slot_ids[res_slots], width), self._keys(ids[miss_pos], width)])
        if width:
            self._soonest[win_ids] = _FAR
        n_res = int(res_slots.numel())
        keep = torch.zeros(keys.numel(), dtype=torch.bool, device=self.device)
        keep[torch.sort(keys, stable=True).indices[: self.capacity]] = True
        keep[n_res:] &= torch.isfinite(keys[n_res:])
        ev_slots = res_slots[~keep[:n_res]]
        admit_local = torch.nonzero(keep[n_res:]).flatten()
        ev_ids = self._release(ev_slots)
        free = self._free_slots(int(admit_local.numel()))
        admit_pos = miss_pos[admit_local]
        self._place(ids[admit_pos], free)
        return admit_pos, free, ev_ids, ev_slots
