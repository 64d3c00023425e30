"""Superbatch planning: sample the next K mini-batches, decide for every needed row which tier serves it (static hot
cache, look-ahead cache, disk), and simulate the Belady-optimal look-ahead cache over the superbatch
(``accessbench.kernels.belady.BeladyCache``) so each batch knows which rows to take from the cache and which to admit."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from accessbench.kernels.belady import BeladyCache
from accessbench.kernels.types import SampledBatch

__all__ = ["BatchPlan", "SuperbatchPlanner", "held_slots"]

_EMPTY = torch.empty(0, dtype=torch.int64)


@dataclass
class BatchPlan:
    """How one sampled batch is served. Positions index ``batch.node_ids``; slots index a cache's rows."""

    batch: SampledBatch
    sample_s: float
    static_slot: torch.Tensor  # int64 [n]: static-cache slot of every needed row, -1 where not cached
    la_hit_pos: torch.Tensor  # rows served by the look-ahead cache ...
    la_hit_slots: torch.Tensor  # ... from these slots
    disk_pos: torch.Tensor  # rows read from disk, in read (and packed) order
    admit_pos: torch.Tensor  # rows (read from disk) the look-ahead cache keeps after this batch ...
    admit_slots: torch.Tensor  # ... in these slots
    relocate: tuple[torch.Tensor, torch.Tensor] | None = None  # (from slots, to slots) applied before this batch
    segment: int | None = None  # packed segment holding the disk rows, when the layout is packed

    @property
    def node_ids(self) -> torch.Tensor:
        """The unique ids the batch needs (seeds first)."""
        return self.batch.node_ids

    @property
    def disk_ids(self) -> torch.Tensor:
        """Ids read from disk, in read order."""
        return self.batch.node_ids[self.disk_pos]


class SuperbatchPlanner:
    """Plans superbatches in order; the look-ahead cache's contents carry over from one superbatch to the next."""

    def __init__(self, *, sample: Callable[[torch.Tensor], SampledBatch], static_lookup: Callable[[torch.Tensor], torch.Tensor] | None,
                 lookahead_rows: int, num_nodes: int) -> None:
        self.sample = sample
        self.static_lookup = static_lookup
        self.lookahead_rows = int(lookahead_rows)
        self.num_nodes = num_nodes
        self.cache: BeladyCache | None = None
        self.phys = torch.full((self.lookahead_rows,), -1, dtype=torch.int64)  # slot -> id the buffer holds

    def plan(self, seed_batches: Sequence[torch.Tensor], *, held: torch.Tensor | None = None) -> list[BatchPlan]:
        """Sample each batch in turn (with the caller's generator, through ``sample``) and plan how to serve it.

        ``held``: what the look-ahead buffer really holds now (slot -> id), which the plan starts from.
        """
        if held is not None:
            self.phys = held.clone()
        plans: list[BatchPlan] = []
        for seeds in seed_batches:
            start = time.perf_counter()
            batch = self.sample(seeds)
            sample_s = time.perf_counter() - start
            ids = batch.node_ids.cpu()
            slot = self.static_lookup(ids) if self.static_lookup is not None else torch.full_like(ids, -1)
            residual = torch.nonzero(slot < 0).flatten()
            plans.append(BatchPlan(batch, sample_s, slot, _EMPTY, _EMPTY, residual, _EMPTY, _EMPTY))
        if self.lookahead_rows > 0 and plans:
            self._simulate(plans)
        return plans

    def _simulate(self, plans: list[BatchPlan]) -> None:
        """Run the optimal cache over the superbatch's residual rows, starting from the rows the buffer still holds.

        Within a superbatch the cache is ``BeladyCache``'s; at its end the rows it evicted are still intact in their
        slots until a later admission overwrites them, so ``phys`` (slot -> id actually held) is what carries over:
        the next superbatch starts by keeping those of them it will use (moved to the slots the new cache assigns).
        """
        occupied = torch.nonzero(self.phys >= 0).flatten()
        carry = torch.unique(self.phys[occupied])  # a row may sit in two slots after a move; keep one
        held = held_slots(self.phys, carry)
        trace = [carry] + [p.node_ids.cpu()[p.disk_pos] for p in plans]
        cache = BeladyCache(self.lookahead_rows, trace, num_nodes=self.num_nodes, admit="bypass")
        kept = cache.step()  # the carried rows the new superbatch will use again
        phys = torch.full_like(self.phys, -1)
        if kept.admitted_ids.numel():
            order = torch.argsort(carry)
            src = held[order[torch.searchsorted(carry[order], kept.admitted_ids)]]
            plans[0].relocate = (src, kept.admitted_slots)
            phys[kept.admitted_slots] = kept.admitted_ids
        for p, rids in zip(plans, trace[1:]):
            pre = cache.slot_of(rids)
            step = cache.step()
            residual = p.disk_pos
            p.la_hit_pos, p.la_hit_slots = residual[step.hit], pre[step.hit]
            p.disk_pos = residual[~step.hit]
            if step.admitted_ids.numel():
                miss_ids = rids[~step.hit]
                order = torch.argsort(miss_ids)
                where = order[torch.searchsorted(miss_ids[order], step.admitted_ids)]
                p.admit_pos, p.admit_slots = p.disk_pos[where], step.admitted_slots
                phys[step.admitted_slots] = step.admitted_ids
        self.cache = cache
        self.phys = phys


def held_slots(phys: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """For a buffer whose slot ``k`` holds row ``phys[k]`` (-1: empty), the slot holding each of ``ids`` (-1: none)."""
    slots = torch.nonzero(phys >= 0).flatten()
    if slots.numel() == 0 or ids.numel() == 0:
        return torch.full_like(ids, -1)
    held_ids = phys[slots]
    order = torch.argsort(held_ids, stable=True)
    sorted_ids = held_ids[order]
    at = torch.clamp(torch.searchsorted(sorted_ids, ids), max=sorted_ids.numel() - 1)
    return torch.where(sorted_ids[at] == ids, slots[order[at]], torch.full_like(ids, -1))
