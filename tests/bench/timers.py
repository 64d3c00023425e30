"""The benchmark timer: ``accessbench.timing.synchronized_perf_counter`` (waits for queued GPU work first)."""

from accessbench.timing import synchronized_perf_counter

__all__ = ["synchronized_perf_counter"]
