"""Where a worker runs: how many torch intra-op threads, and on which CPUs (chosen by the parent, applied by the
worker before torch is imported).

- A workload that names ``cores`` (``[run] cores = N``) gets exactly that: the worker is pinned to the ``N`` least
  busy usable CPUs (ties: the lowest numbered, so two runs of the same workload on a quiet machine land on the same
  CPUs) and runs ``N`` intra-op threads. On the 2-core VM, tiny's 2 ms steps at 2 threads unpinned were bimodal
  between processes (about 1.95 ms or 2.3 ms per step, the whole run one or the other), at 1 thread pinned within
  1.94..2.04 ms: a second thread bought nothing and made runs of the same code differ by 18% (docs/REPORTS.md).
- Otherwise the worker runs one intra-op thread per *free* core: the usable CPUs minus the cores other processes
  were using just before it started (measured over ``SAMPLE_S``; above ``CONTENDED_CORES`` a busy core is counted
  as taken, rounding half up), at least one, and is not pinned (other processes move between CPUs too). On a busy
  2-core machine torch's default of 2 threads spun against the other process (46 ms -> 572 ms per step, issue 15).

A strategy's own ``threads`` option (cpu-centric) still wins inside the worker; records carry what the measured
window ran with (``cpu_threads``, ``cpu_affinity``) and the placement's reason in ``notes``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psutil

from accessbench.schema import CONTENDED_CORES

__all__ = ["JOB_KEY", "Placement", "apply_affinity", "plan", "sample_busy", "usable_cpus"]

#: Seconds of per-CPU sampling before each worker starts (the parent is idle meanwhile).
SAMPLE_S = 0.2
#: The job file key the worker reads its placement from.
JOB_KEY = "placement"


@dataclass(frozen=True)
class Placement:
    """``threads``: torch intra-op threads; ``cpus``: the CPUs to pin to (empty: not pinned); ``reason``: one line."""

    threads: int
    cpus: tuple[int, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"threads": self.threads, "cpus": list(self.cpus), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Placement:
        cpus = d.get("cpus") or []
        threads = d.get("threads")
        if not isinstance(threads, int) or threads < 1 or not isinstance(cpus, list):
            raise ValueError(f"invalid placement {d!r}")
        return cls(threads=threads, cpus=tuple(int(c) for c in cpus), reason=str(d.get("reason", "")))


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def sample_busy(seconds: float = SAMPLE_S) -> dict[int, float]:
    """Busy fraction (0..1) of every CPU over the next ``seconds`` (this process sleeps meanwhile)."""
    per_cpu = psutil.cpu_percent(interval=seconds, percpu=True)
    return {i: p / 100.0 for i, p in enumerate(per_cpu)}


def _taken_cores(others: float) -> int:
    """Cores counted as taken by other processes: none up to ``CONTENDED_CORES``, else ``others`` rounded half up."""
    if others <= CONTENDED_CORES:
        return 0
    return max(1, math.floor(others + 0.5))


def plan(cores: int | None, *, usable: list[int], busy: dict[int, float]) -> Placement:
    """The placement for a workload asking for ``cores`` (None: as many threads as there are free cores).

    ``usable``: CPUs the worker may use; ``busy``: each CPU's busy fraction just before the start (other processes).
    """
    if not usable:
        raise ValueError("no usable CPUs")
    others = sum(busy.get(c, 0.0) for c in usable)
    if cores is not None:
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        n = min(cores, len(usable))
        # least busy first, a quarter of a core counting as equal, then the lowest numbered
        chosen = sorted(sorted(usable, key=lambda c: (round(busy.get(c, 0.0) * 4), c))[:n])
        short = f" (asked for {cores}, {len(usable)} usable)" if n < cores else ""
        return Placement(n, tuple(chosen), f"placement: {n} intra-op thread(s) pinned to CPU(s) "
                         f"{','.join(map(str, chosen))}{short} (the workload's cores = {cores})")
    free = max(1, len(usable) - _taken_cores(others))
    return Placement(free, (), f"placement: {free} intra-op thread(s), one per free core ({len(usable)} usable, "
                     f"other processes used {others:.2f} cores just before the start); not pinned")


def apply_affinity(placement: Placement) -> str | None:
    """Pin this process to ``placement.cpus`` (before torch starts its threads); a note where that failed."""
    if not placement.cpus:
        return None
    if not hasattr(os, "sched_setaffinity"):
        return "placement: CPU pinning not supported on this platform; not pinned"
    try:
        os.sched_setaffinity(0, placement.cpus)
    except OSError as exc:
        return f"placement: could not pin to CPU(s) {list(placement.cpus)}: {exc.strerror}; not pinned"
    return None
