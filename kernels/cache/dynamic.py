"""Dynamic cache policies at batch granularity: ``lru``, ``clock`` and ``hybrid`` (static importance + reuse).

Granularity (the same in the strategy and the simulator): a batch's unique ids are looked up together, so an id
either hits (cached before the batch) or misses; then the policy updates once for the whole batch. A batch never
evicts its own hits or its own admissions. When a batch misses more ids than fit, the earliest misses in batch order
are admitted first (the batch's ids come seeds first, in first-occurrence order). ``lru`` and ``clock`` never evict
a batch's own hits or admissions; ``hybrid`` ranks a batch's hits with every other resident.
"""

from __future__ import annotations

import torch

from kernels.cache.importance import rank_by_importance
from kernels.cache.policy_base import CachePolicy
from kernels.cache.table import SlotTable

__all__ = ["LruPolicy", "ClockPolicy", "HybridPolicy"]

_Update = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64, device=device)


class LruPolicy(CachePolicy):
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

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> _Update:
        t, cap, dev = self.t, self.capacity, self.device
        hit_slots = slots[hit]
        self.stamp[hit_slots] = t
        miss_pos = torch.nonzero(~hit).flatten()
        n_admit = min(int(miss_pos.numel()), cap - int(hit_slots.numel()))
        if n_admit <= 0:
            return _empty(dev), _empty(dev), _empty(dev), _empty(dev)
        admit_pos = miss_pos[:n_admit]
        free = self._free_slots(n_admit)
        need = n_admit - int(free.numel())
        ev_slots, ev_ids = _empty(dev), _empty(dev)
        if need > 0:
            occ = torch.nonzero(self.slot_ids >= 0).flatten()
            key = self.stamp[occ] * cap + occ  # unique keys: the order is the same on every device
            ev_slots = occ[torch.topk(key, need, largest=False, sorted=True).indices]
            ev_ids = self._release(ev_slots)
        new_slots = torch.cat([free, ev_slots])
        self._place(ids[admit_pos], new_slots)
        self.stamp[new_slots] = t
        return admit_pos, new_slots, ev_ids, ev_slots


class ClockPolicy(CachePolicy):
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

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> _Update:
        cap, dev = self.capacity, self.device
        hit_slots = slots[hit]
        self.ref[hit_slots] = True
        miss_pos = torch.nonzero(~hit).flatten()
        n_admit = min(int(miss_pos.numel()), cap - int(hit_slots.numel()))
        if n_admit <= 0:
            return _empty(dev), _empty(dev), _empty(dev), _empty(dev)
        admit_pos = miss_pos[:n_admit]
        free = self._free_slots(n_admit)
        need = n_admit - int(free.numel())
        ev_slots, ev_ids = _empty(dev), _empty(dev)
        if need > 0:
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
            ev_slots = order[take]
            self.hand = (self.hand + last + 1) % cap
            ev_ids = self._release(ev_slots)
        new_slots = torch.cat([free, ev_slots])
        self._place(ids[admit_pos], new_slots)
        self.ref[new_slots] = True
        return admit_pos, new_slots, ev_ids, ev_slots


class HybridPolicy(CachePolicy):
    """Static importance combined with dynamic reuse, after LSM-GNN: keep the rows predicted to be reused soonest.

    Per id: a prior per-batch access probability ``p0`` (from the static importance), the number of batches ``n``
    that needed it so far and the last batch ``last`` that did. After ``T`` batches the estimated reuse distance is
    ``d = (K0 + T) / (K0 * p0 + n)`` batches (the prior counts as ``K0`` batches of evidence), and the eviction key is
    ``d - recency * min(T - 1 - last, d)``: with ``recency > 0`` rows not seen for a while are expected back sooner
    (overdue), with ``recency < 0`` they are expected later (LRU-like). After each batch the ``capacity`` ids with
    the smallest keys among residents and the batch's misses stay (ties: residents first, then batch order), so a
    miss is admitted only when it beats a resident (it may bypass the cache). The cache starts filled with the
    ``capacity`` ids of highest prior.
    """

    name = "hybrid"
    dynamic = True

    def __init__(self, capacity: int, num_nodes: int, *, prior: torch.Tensor, prior_strength: float = 8.0,
                 recency: float = 0.0, scale_prior_by_first_batch: bool = False,
                 device: torch.device | str = "cpu", table: SlotTable | None = None, prefill: bool = True) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        if prior.numel() != num_nodes:
            raise ValueError(f"prior must have one value per node ({num_nodes}), got {prior.numel()}")
        if prior_strength < 0:
            raise ValueError("prior_strength must be >= 0")
        if not -1.0 <= recency <= 1.0:
            raise ValueError("recency must be in [-1, 1]")
        self.k0 = float(prior_strength)
        self.recency = float(recency)
        self.p0 = prior.to(device=self.device, dtype=torch.float64).clone()
        self._scale_pending = scale_prior_by_first_batch
        self.count = torch.zeros(num_nodes, dtype=torch.int32, device=self.device)
        self.last = torch.full((num_nodes,), -1, dtype=torch.int64, device=self.device)
        if prefill and self.capacity:
            top = rank_by_importance(self.p0)[: self.capacity]
            self.fill(top)

    def _extra_state_bytes(self) -> int:
        return self.p0.numel() * 8 + self.count.numel() * 4 + self.last.numel() * 8

    def _keys(self, ids: torch.Tensor) -> torch.Tensor:
        seen = float(self.t + 1)
        evidence = self.k0 * self.p0[ids] + self.count[ids].to(torch.float64)
        dist = torch.where(evidence > 0, (self.k0 + seen) / evidence.clamp_min(1e-300),
                           torch.full_like(evidence, float("inf")))
        if self.recency == 0.0:
            return dist
        last = self.last[ids]
        idle = torch.where(last >= 0, (self.t - last).to(torch.float64), torch.zeros_like(dist))
        return dist - self.recency * torch.minimum(idle, dist)

    def _observe(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> None:
        if self._scale_pending and ids.numel():
            # a degree prior is relative: scale it so that it sums to the rows of the first batch
            total = float(self.p0.sum())
            if total > 0:
                self.p0 *= ids.numel() / total
            self._scale_pending = False
        self.count[ids] += 1
        self.last[ids] = self.t

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor) -> _Update:
        dev = self.device
        self._observe(ids, slots, hit)
        miss_pos = torch.nonzero(~hit).flatten()
        res_slots = torch.nonzero(self.slot_ids >= 0).flatten()
        miss_ids = ids[miss_pos]
        keys = torch.cat([self._keys(self.slot_ids[res_slots]), self._keys(miss_ids)])
        n_res = int(res_slots.numel())
        keep = torch.zeros(keys.numel(), dtype=torch.bool, device=dev)
        order = torch.sort(keys, stable=True).indices[: self.capacity]
        keep[order] = True
        keep[n_res:] &= torch.isfinite(keys[n_res:])
        ev_slots = res_slots[~keep[:n_res]]
        admit_local = torch.nonzero(keep[n_res:]).flatten()
        ev_ids = self._release(ev_slots)
        free = self._free_slots(int(admit_local.numel()))
        admit_pos = miss_pos[admit_local]
        self._place(ids[admit_pos], free)
        return admit_pos, free, ev_ids, ev_slots
