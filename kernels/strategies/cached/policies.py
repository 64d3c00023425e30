"""Cache policies by name: ``degree``, ``presample`` (static), ``lru``, ``clock``, ``hybrid`` (dynamic) and
``belady`` (look-ahead optimal over a planned superbatch, the upper bound the others are reported against).

The ``cached`` strategy and the simulator build their policies here, with ``make_policy``, so both run the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from accessbench.kernels.belady import BeladyCache

from .dynamic import ClockPolicy, HybridPolicy, LruPolicy
from .policy_base import CachePolicy, PlanError, PolicyStep
from .table import SlotTable

__all__ = [
    "POLICIES",
    "STATIC_POLICIES",
    "BeladyPolicy",
    "CachePolicy",
    "ClockPolicy",
    "DegreePolicy",
    "HybridPolicy",
    "LruPolicy",
    "PlanError",
    "PolicyConfig",
    "PolicyStep",
    "PresamplePolicy",
    "StaticPolicy",
    "hybrid_prior",
    "importance_for",
    "make_policy",
]

PolicyName = Literal["degree", "presample", "lru", "clock", "hybrid", "belady"]
POLICIES: tuple[str, ...] = ("degree", "presample", "lru", "clock", "hybrid", "belady")
STATIC_POLICIES: tuple[str, ...] = ("degree", "presample")


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64, device=device)


class StaticPolicy(CachePolicy):
    """A fixed hot set chosen before the run; nothing is admitted or evicted."""

    name = "static"

    def __init__(self, capacity: int, num_nodes: int, *, hot_ids: torch.Tensor, device: torch.device | str = "cpu",
                 table: SlotTable | None = None) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        self.fill(hot_ids)

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor):  # type: ignore[override]
        return (_empty(self.device),) * 4


class DegreePolicy(StaticPolicy):
    """Static: the nodes that appear in the most neighbour lists (PaGraph, torch-quiver)."""

    name = "degree"


class PresamplePolicy(StaticPolicy):
    """Static: the nodes needed by the most of K pre-sampled batches (GNNLab)."""

    name = "presample"


class BeladyPolicy(CachePolicy):
    """Belady's MIN over a planned superbatch (``accessbench.kernels.belady.BeladyCache``).

    ``admit="bypass"`` (the default, optimal when a miss need not be cached) or ``"always"`` (textbook demand MIN).
    ``plan(trace)`` hands it the coming batches; every ``step`` must then receive exactly the planned batch. With
    ``prefill`` (the default) the first plan of an empty cache fills it with the rows the plan needs soonest, as
    the static and hybrid policies start filled (the caller loads those rows, like a static hot set). Rows the
    look-ahead cache lets go because the plan never needs them again *linger*: they stay cached (the plan cannot hit
    them, so counts are unchanged) until their slot is needed, and the next ``plan`` may keep them. So consecutive
    superbatches hand their cache over instead of starting cold.
    """

    name = "belady"
    dynamic = True

    def __init__(self, capacity: int, num_nodes: int, *, device: torch.device | str = "cpu",
                 table: SlotTable | None = None, admit: Literal["bypass", "always"] = "bypass",
                 prefill: bool = True) -> None:
        super().__init__(capacity, num_nodes, device=device, table=table)
        if admit not in ("bypass", "always"):
            raise ValueError(f"admit={admit!r}; valid: bypass, always")
        self.admit = admit
        self.prefill = prefill
        self.filled = (torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64))
        self._cache: BeladyCache | None = None
        self._plan: list[torch.Tensor] = []
        self._next = 0
        self._linger = torch.zeros(self.capacity, dtype=torch.bool, device=self.device)
        self._plan_ids = torch.empty(0, dtype=torch.int64)  # sorted ids the plan needs
        self._plan_last = torch.empty(0, dtype=torch.int64)  # the last planned batch that needs each

    @property
    def planned_left(self) -> int:
        """Planned batches not yet stepped."""
        return len(self._plan) - self._next

    def _needed_after(self, ids: torch.Tensor, t: int) -> torch.Tensor:
        """Whether each id is needed by a planned batch after index ``t``."""
        ids = ids.cpu()
        if self._plan_ids.numel() == 0 or ids.numel() == 0:
            return torch.zeros(ids.numel(), dtype=torch.bool)
        pos = torch.searchsorted(self._plan_ids, ids).clamp_max(self._plan_ids.numel() - 1)
        return (self._plan_ids[pos] == ids) & (self._plan_last[pos] > t)

    def _let_go(self, ids: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The look-ahead cache dropped ``ids`` after planned batch ``t``: release those the plan still needs (it
        counts them as misses), let the others linger. Returns the released ``(ids, slots)``."""
        ids = ids.to(self.device)
        slots = self.table.lookup(ids)
        needed = self._needed_after(ids, t).to(self.device)
        self._linger[slots[~needed]] = True
        self._release(slots[needed])
        return ids[needed], slots[needed]

    def _slots_for(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``k`` slots: free ones first, then lingering ones (lowest first), which are evicted."""
        free = self._free_slots(k)
        short = k - int(free.numel())
        if short <= 0:
            return free, torch.empty(0, dtype=torch.int64, device=self.device), free[:0]
        gone_slots = torch.nonzero(self._linger).flatten()[:short]
        self._linger[gone_slots] = False
        gone_ids = self._release(gone_slots)
        return torch.cat([free, gone_slots]), gone_ids, gone_slots

    def plan(self, trace: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Plan the next batches (each the unique ids a batch needs); returns the ``(ids, slots)`` it evicted.

        ``filled`` then holds the ``(ids, slots)`` a prefill placed (empty unless this was the first plan).
        """
        batches = [b.to(torch.int64).cpu() for b in trace]
        if batches and sum(b.numel() for b in batches):
            flat = torch.cat(batches)
            when = torch.repeat_interleave(torch.arange(len(batches)), torch.tensor([b.numel() for b in batches]))
            self._plan_ids, inv = torch.unique(flat, return_inverse=True)
            self._plan_last = torch.full((self._plan_ids.numel(),), -1, dtype=torch.int64)
            self._plan_last.scatter_reduce_(0, inv, when, reduce="amax")
        else:
            self._plan_ids = self._plan_last = torch.empty(0, dtype=torch.int64)
        held, _ = self.contents()
        fill = self.prefill and self.occupied == 0 and self._cache is None
        first = self._plan_ids if fill else held.cpu()  # a virtual first batch: what it may hold going in
        cache = BeladyCache(self.capacity, [first, *batches], num_nodes=self.num_nodes, admit=self.admit)
        kept = cache.step().admitted_ids.to(self.device)  # what it holds that the plan needs soonest
        self.filled = (kept[:0], kept[:0].clone())
        if fill:
            self.filled = (kept, self.fill(kept))
        self._linger.zero_()
        dropped = self._let_go(held[~torch.isin(held, kept)], -1)
        self._cache, self._plan, self._next = cache, batches, 0
        return dropped

    def _update(self, ids: torch.Tensor, slots: torch.Tensor, hit: torch.Tensor):  # type: ignore[override]
        if self._cache is None or self._next >= len(self._plan):
            raise PlanError("belady looks ahead: plan(trace) the coming batches first (the strategy's load() does)")
        expected = self._plan[self._next]
        if not torch.equal(ids.cpu(), expected):
            raise PlanError(f"belady: batch {self._next} of the plan differs from the ids being gathered")
        t = self._next
        self._next += 1
        bstep = self._cache.step()
        if not torch.equal(bstep.hit, hit.cpu()):
            raise PlanError("belady: the cache's contents diverged from its plan")
        ev_ids, ev_slots = self._let_go(bstep.evicted_ids, t)
        admitted_ids = bstep.admitted_ids.to(self.device)
        if admitted_ids.numel():
            sorted_ids, order = torch.sort(ids)
            admit_pos = order[torch.searchsorted(sorted_ids, admitted_ids)]
        else:
            admit_pos = _empty(self.device)
        new_slots, gone_ids, gone_slots = self._slots_for(int(admitted_ids.numel()))
        self._place(admitted_ids, new_slots)
        return admit_pos, new_slots, torch.cat([ev_ids, gone_ids]), torch.cat([ev_slots, gone_slots])


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policies: which importance hybrid uses and how strongly, how many presample batches exist."""

    hybrid_importance: Literal["presample", "degree"] = "presample"
    hybrid_prior: float = 8.0
    hybrid_recency: float = 0.0
    hybrid_lookahead: int = -1
    presample_batches: int = 8

    def __post_init__(self) -> None:
        if self.hybrid_importance not in ("presample", "degree"):
            raise ValueError(f"hybrid_importance={self.hybrid_importance!r}; valid: presample, degree")
        if self.hybrid_prior < 0:
            raise ValueError("hybrid_prior must be >= 0")
        if not -1.0 <= self.hybrid_recency <= 1.0:
            raise ValueError("hybrid_recency must be in [-1, 1]")
        if self.hybrid_lookahead < -1:
            raise ValueError("hybrid_lookahead must be >= 0, or -1 for auto")
        if self.presample_batches < 1:
            raise ValueError("presample_batches must be >= 1")


def importance_for(policy: str, config: PolicyConfig) -> str | None:
    """Which static score (``degree``/``presample``) a policy needs, or None."""
    if policy in STATIC_POLICIES:
        return policy
    if policy == "hybrid":
        return config.hybrid_importance
    return None


def hybrid_prior(importance: torch.Tensor, config: PolicyConfig) -> torch.Tensor:
    """Per-batch access probability prior for hybrid: presample counts / K, or raw degree (scaled on batch one)."""
    if config.hybrid_importance == "presample":
        return importance.to(torch.float64) / config.presample_batches
    return importance.to(torch.float64)


def make_policy(name: str, capacity: int, num_nodes: int, *, importance: Mapping[str, torch.Tensor],
                initial_ids: torch.Tensor | None = None, config: PolicyConfig | None = None,
                device: torch.device | str = "cpu", table: SlotTable | None = None) -> CachePolicy:
    """A policy of ``capacity`` slots. Static policies cache ``initial_ids`` (chosen by the placement); hybrid
    starts with ``initial_ids`` (default: its highest-prior ids); lru, clock and belady start empty.
    ``importance`` maps ``degree``/``presample`` to int64 ``[N]`` scores, as needed by the policy.
    """
    config = config or PolicyConfig()
    kw = {"device": device, "table": table}
    need = importance_for(name, config)
    if need is not None and need not in importance:
        raise ValueError(f"policy {name!r} needs the {need!r} importance score")
    if name in STATIC_POLICIES:
        if initial_ids is None:
            raise ValueError(f"static policy {name!r} needs its hot set (initial_ids)")
        cls = DegreePolicy if name == "degree" else PresamplePolicy
        return cls(capacity, num_nodes, hot_ids=initial_ids, **kw)
    if name == "lru":
        return LruPolicy(capacity, num_nodes, **kw)
    if name == "clock":
        return ClockPolicy(capacity, num_nodes, **kw)
    if name == "belady":
        return BeladyPolicy(capacity, num_nodes, **kw)
    if name == "hybrid":
        assert need is not None
        policy = HybridPolicy(capacity, num_nodes, prior=hybrid_prior(importance[need], config),
                              prior_strength=config.hybrid_prior, recency=config.hybrid_recency,
                              lookahead=config.hybrid_lookahead,
                              scale_prior_by_first_batch=config.hybrid_importance == "degree",
                              prefill=initial_ids is None, **kw)
        if initial_ids is not None:
            policy.fill(initial_ids)
        return policy
    raise ValueError(f"unknown policy {name!r}; valid: {', '.join(POLICIES)}")
