"""Confidence intervals for the ratio of two medians, from the per-step samples a record keeps.

The method, stated once (docs/REPORTS.md justifies it): a percentile bootstrap of ``median(new) / median(base)``.
Each of ``RESAMPLES`` rounds draws both samples again with replacement, independently, and takes the ratio of the
two medians; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those ratios. A record
measured by several processes (``sample_runs``) is resampled in two stages: its processes with replacement, then
each drawn process's steps with replacement, so the interval carries the drift between processes. The random
generator is seeded (``SEED``), so the same two runs always give the same interval.

Why this one: the report judges by medians (robust to the long right tail that a busy machine adds to step times),
and the bootstrap makes no assumption about the shape of that tail or that the two runs' spreads are equal (the
Hodges-Lehmann interval assumes a pure shift of the log times). It is cheap: 2000 x 512 draws per metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LEVEL", "MIN_SAMPLES", "RESAMPLES", "SEED", "RatioInterval", "clean_samples", "ratio_interval", "sample_runs"]

#: Bootstrap rounds per interval.
RESAMPLES = 2000
#: Two-sided confidence level of the interval.
LEVEL = 0.95
#: Seed of the bootstrap's generator (fixed: the same runs give the same interval).
SEED = 20240515
#: Fewer finite samples than this on either side: no interval (the comparison falls back to the quantiles).
MIN_SAMPLES = 5


@dataclass(frozen=True)
class RatioInterval:
    """``ratio = median(new) / median(base)`` and its bootstrap interval ``[low, high]``; ``n_base``, ``n_new``
    samples; ``runs_base``, ``runs_new``: the processes resampled on each side (1: the steps only)."""

    ratio: float
    low: float
    high: float
    n_base: int
    n_new: int
    runs_base: int = 1
    runs_new: int = 1


def clean_samples(values: object) -> list[float]:
    """The finite, positive numbers of ``values`` (a list from a record's ``samples``); [] for anything else."""
    if not isinstance(values, (list, tuple)):
        return []
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f) and f > 0:
            out.append(f)
    return out


def sample_runs(row: Any) -> list[int] | None:
    """A record's ``sample_runs`` (samples per process, a dict or a pandas row) as ints, or None."""
    runs = row.get("sample_runs")
    if not isinstance(runs, (list, tuple)) or not all(isinstance(r, int) and not isinstance(r, bool) for r in runs):
        return None
    return list(runs)


def _groups(values: Sequence[float], runs: Sequence[int] | None) -> list[np.ndarray] | None:
    """``values`` split into the processes ``runs`` describes; None where the samples do not add up to ``runs``
    (or a process kept fewer than two of them) or there is a single process."""
    if not runs or len(runs) < 2 or any(not isinstance(r, int) or r < 2 for r in runs) or sum(runs) != len(values):
        return None
    cuts = np.cumsum(runs)[:-1]
    return np.split(np.asarray(values, dtype=float), cuts)


def _medians(x: np.ndarray, groups: list[np.ndarray] | None, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """``resamples`` bootstrap medians: of the steps, or (with ``groups``) of processes drawn with replacement whose
    steps are drawn with replacement in turn (the two-stage bootstrap of clustered data)."""
    if groups is None:
        return np.median(x[rng.integers(0, len(x), size=(resamples, len(x)))], axis=1)
    out = np.empty(resamples)
    k = len(groups)
    for r in range(resamples):
        picked = rng.integers(0, k, size=k)
        out[r] = np.median(np.concatenate([groups[i][rng.integers(0, len(groups[i]), size=len(groups[i]))]
                                           for i in picked]))
    return out


def ratio_interval(base: Sequence[float], new: Sequence[float], *, resamples: int = RESAMPLES,
                   level: float = LEVEL, seed: int = SEED, base_runs: Sequence[int] | None = None,
                   new_runs: Sequence[int] | None = None) -> RatioInterval | None:
    """The bootstrap interval of ``median(new) / median(base)``; None with fewer than ``MIN_SAMPLES`` on a side.

    ``base_runs`` / ``new_runs``: how many samples each process contributed (``sample_runs``); a side with two or
    more is resampled by process, then by step, so drift between processes widens the interval as it should.
    """
    braw, nraw = list(base), list(new)
    b = np.asarray(clean_samples(braw), dtype=float)
    n = np.asarray(clean_samples(nraw), dtype=float)
    if len(b) < MIN_SAMPLES or len(n) < MIN_SAMPLES:
        return None
    gb = _groups(b, base_runs) if len(b) == len(braw) else None  # samples dropped: process boundaries unknown
    gn = _groups(n, new_runs) if len(n) == len(nraw) else None
    rng = np.random.Generator(np.random.PCG64(seed))
    ratios = _medians(n, gn, rng, resamples) / _medians(b, gb, rng, resamples)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return RatioInterval(float(np.median(n) / np.median(b)), float(low), float(high), len(b), len(n),
                         len(gb) if gb else 1, len(gn) if gn else 1)
