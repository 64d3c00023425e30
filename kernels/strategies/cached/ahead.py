"""Look-ahead loading for the ``cached`` strategy: sample batches ahead (belady's superbatch, hybrid's window, the
next batch of a victim prefetch), gather them in order, and report the work done ahead with the batch it was for.

Accounting (what ``load()`` hands the runner per batch): the batch's sampling and its hybrid hint are its ``sample``
seconds; a belady plan made just before a batch is gathered adds to that batch's ``sample`` (and to
``extras["plan_s"]``); the victim prefetch made for a batch during the previous step adds its CPU side (ring lookup,
gather into pinned staging, copy launch) to the batch's ``gather`` and, on CUDA, the side-stream copy's event time
to its ``transfer``, and marks the batch ``overlapped`` (that copy ran behind the previous batch's compute). Bytes
the backing path counts while sampling a batch ahead are held back until the batch is consumed, so counters taken
after ``reset_stats()`` cover exactly the batches handed out since.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from accessbench.kernels.base import AccessStrategy, LoadedBatch
from accessbench.kernels.types import SampledBatch

from .policies import BeladyPolicy, HybridPolicy

__all__ = ["LookaheadLoading", "Prefetch"]


@dataclass
class Prefetch:
    """Victim-ring rows copied ahead for the next batch: the ids of its ring hits, their rows on the compute device,
    and (CUDA) the events that bracket the copy (``start`` is None when the copy was not asynchronous)."""

    ids: torch.Tensor
    rows: torch.Tensor
    done: torch.cuda.Event | None
    start: torch.cuda.Event | None


@dataclass
class _Ahead:
    """A batch sampled ahead: its phase seconds, the backing's bytes counted while sampling it, its hint seconds."""

    batch: SampledBatch
    phase_s: dict[str, float]
    deferred: dict[str, int] = field(default_factory=dict)
    plan_s: float = 0.0


def _add_seconds(into: dict[str, float], more: dict[str, float]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0.0) + value


class LookaheadLoading(AccessStrategy):
    """``load()`` of a strategy with a cache policy (``_policy``), an optional victim ring (``_victim``) and a
    backing strategy (``_backing``) that samples; the subclass provides ``plan``, ``hint``, ``prefetch_victims``
    (which leaves its ``Prefetch`` in ``_prefetched``), ``gather`` and ``_extra``."""

    _policy: Any
    _victim: Any
    _backing: AccessStrategy
    _prefetched: Prefetch | None

    def __init__(self, options: Any | None = None) -> None:
        super().__init__(options)
        self._prefetched = None
        # per tier, minus the bytes the backing counted while sampling batches not yet consumed (added back then)
        self._deferred: dict[str, int] = {}

    @abc.abstractmethod
    def plan(self, trace: Sequence[torch.Tensor]) -> None:
        """Hand a look-ahead policy the coming batches (each batch's ``node_ids``)."""

    @abc.abstractmethod
    def hint(self, node_ids: torch.Tensor) -> None:
        """Tell a hinted policy about an upcoming batch."""

    @abc.abstractmethod
    def prefetch_victims(self, node_ids: torch.Tensor) -> int:
        """Start copying the victim-ring rows the coming batch will hit (leaving a ``Prefetch`` in ``_prefetched``)."""

    @abc.abstractmethod
    def _extra(self, key: str, n: int) -> None:
        """Add ``n`` to the integer counter ``extras[key]``."""

    def load(
        self, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int], *, generator: torch.Generator
    ) -> Iterator[LoadedBatch]:
        """Sample ahead (a superbatch for belady, the look-ahead window for hybrid, one batch when prefetching
        victims), then gather in order; the work done ahead for a batch is reported with it (module docstring)."""
        belady = isinstance(self._policy, BeladyPolicy)
        hinted = isinstance(self._policy, HybridPolicy) and self._policy.lookahead != 0

        def ahead() -> int:  # batches to hold sampled: the current one and those looked ahead at
            if belady:
                return self.options.superbatch
            window = self._policy.lookahead if hinted else 0  # -1 (auto) until the first batch fixes it
            return max(window + 1 if window > 0 else 1 if window < 0 else 0, 2 if self._victim else 0)

        if ahead() == 0:
            yield from super().load(seed_batches, fanouts, generator=generator)
            return
        seeds_iter = iter(seed_batches)
        pending: list[_Ahead] = []
        carry: dict[str, float] = {}  # seconds of the victim prefetch made for the next batch
        prefetched: Prefetch | None = None
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead():
                seeds = next(seeds_iter, None)
                if seeds is None:
                    exhausted = True
                    break
                pending.append(self._sample_ahead(seeds, fanouts, generator, hint=hinted))
            if not pending:
                return
            item = pending.pop(0)
            phase_s, plan_s = item.phase_s, item.plan_s
            if belady and self._policy.planned_left == 0:
                with self.collect_phases() as planned, self.phase("sample"):
                    self.plan([item.batch.node_ids] + [a.batch.node_ids for a in pending])
                _add_seconds(phase_s, planned)
                plan_s += planned.get("sample", 0.0)
            for tier, n in item.deferred.items():  # this batch's sampling bytes count now, at consumption
                self._deferred[tier] = self._deferred.get(tier, 0) + n
            with self.collect_phases() as more:
                with self.trusting_ids():
                    feats = self.gather(item.batch.node_ids)
                moved = self.blocks_to_device(item.batch)
            _add_seconds(phase_s, more)
            _add_seconds(phase_s, carry)
            overlapped = False
            if prefetched is not None:  # the prefetch made for this batch during the previous step
                if prefetched.start is not None and prefetched.done is not None:
                    prefetched.done.synchronize()  # done already where the gather used the rows
                    copy_s = prefetched.start.elapsed_time(prefetched.done) / 1e3
                    phase_s["transfer"] = phase_s.get("transfer", 0.0) + copy_s
                    overlapped = True
                self._extra("victim_prefetch_rows", int(prefetched.ids.numel()))
            if plan_s:
                self._stats.extras["plan_s"] = self._stats.extras.get("plan_s", 0.0) + plan_s
            carry, prefetched = {}, None
            if self._victim is not None and pending and not (belady and self._policy.planned_left == 0):
                with self.collect_phases() as carry, self.phase("gather"):
                    self.prefetch_victims(pending[0].batch.node_ids)
                prefetched = self._prefetched
            yield LoadedBatch(moved, feats, phase_s, overlapped=overlapped)

    def _sample_ahead(self, seeds: torch.Tensor, fanouts: Sequence[int], generator: torch.Generator, *,
                      hint: bool) -> _Ahead:
        """Sample (and hint) a batch ahead of its use; the bytes the backing counts meanwhile are held back."""
        before = dict(self._backing._stats.bytes_by_tier)  # the counters themselves: a backing's stats() may sync
        with self.collect_phases() as phase_s, self.phase("sample"):
            batch = self.sample(seeds, fanouts, generator=generator)
            plan_s = 0.0
            if hint:
                t0 = time.perf_counter()
                self.hint(batch.node_ids)
                plan_s = time.perf_counter() - t0
        after = self._backing._stats.bytes_by_tier
        delta = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
        for tier, n in delta.items():
            self._deferred[tier] = self._deferred.get(tier, 0) - n
        return _Ahead(batch, phase_s, delta, plan_s)

    def reset_stats(self) -> None:
        """Zero the counters; batches already sampled ahead count when they are consumed."""
        self._deferred = {}
        super().reset_stats()
