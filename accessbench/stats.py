"""Summary statistics of repeated measurements, one definition for the whole suite.

Median with the 10th and 90th percentiles (``statistics.quantiles``, inclusive method: the percentiles of the sample
itself, so p10 <= median <= p90 always and one sample gives the same value three times). Used by the runner
(``<phase>_s``, ``_p10``, ``_p90``), the probe, the GPU check, asv and the pytest-benchmark sessions. Pure Python.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spread", "relative_spread", "spread", "summarise"]


@dataclass(frozen=True)
class Spread:
    """Median and 10th/90th percentiles of ``n`` samples (same unit as the samples)."""

    median: float
    p10: float
    p90: float
    n: int

    @property
    def relative(self) -> float:
        """(p90 - p10) / median: the width of the central 80% as a fraction of the median (inf for a 0 median)."""
        return (self.p90 - self.p10) / self.median if self.median else float("inf")


def spread(values: Sequence[float]) -> Spread:
    """The median and p10/p90 of ``values`` (at least one value; ValueError otherwise)."""
    if not values:
        raise ValueError("spread of no values")
    vals = [float(v) for v in values]
    if len(vals) == 1:
        return Spread(vals[0], vals[0], vals[0], 1)
    q = statistics.quantiles(vals, n=10, method="inclusive")
    return Spread(statistics.median(vals), q[0], q[-1], len(vals))


def summarise(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """(median, p10, p90) of ``values``; all None for no values (a phase that did not run)."""
    if not values:
        return None, None, None
    s = spread(values)
    return s.median, s.p10, s.p90


def relative_spread(values: Sequence[float]) -> float:
    """(p90 - p10) / median of ``values``."""
    return spread(values).relative
