"""Options of the ``cached`` strategy (``accessbench.kernels.strategies.cached.strategy``): a frozen dataclass the registry validates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .importance import epoch_batches, parse_fanouts
from .policies import POLICIES, PolicyConfig

__all__ = ["BACKINGS", "DEFAULT_CACHE_FRACTION", "CachedOptions", "parse_backing_options"]

BACKINGS: tuple[str, ...] = ("cpu-centric", "zero-copy", "out-of-core")
DEFAULT_CACHE_FRACTION = 0.2


def parse_backing_options(text: str) -> dict[str, str]:
    """``"threads=4,prefetch=2"`` as a dict of option strings for the backing strategy."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"backing_options entry {part!r} must be key=value (e.g. threads=4,prefetch=2)")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class CachedOptions:
    """``policy``: degree, presample (static), lru, clock, hybrid (dynamic), belady (look-ahead upper bound).
    ``cache_fraction`` of the feature table or ``cache_bytes`` (give at most one; default 0.2 of the table).
    ``backing``: the strategy serving misses, with ``backing_options`` as ``key=value,...``.
    ``placement``: replicate or partition across ranks. ``lookup``: auto, dense or hash id-to-slot table.
    ``victim_buffer``: keep evicted rows in a pinned host ring of ``victim_fraction`` of the table's rows.
    ``presample_*``: how presample (and hybrid's prior) pre-samples K batches (0: one epoch of the training ids),
    apart from the measured ones.
    ``hybrid_*``: hybrid's importance, prior strength (batches of evidence), recency weight in [-1, 1] and look-ahead
    window (batches ``load()`` samples ahead so hybrid knows their reuse; 0: none; -1: auto, about four
    cache-fulls of requests).
    ``superbatch``: batches belady plans ahead in ``load()``.
    """

    policy: Literal["degree", "presample", "lru", "clock", "hybrid", "belady"] = "degree"
    cache_fraction: float | None = None
    cache_bytes: int | None = None
    backing: Literal["cpu-centric", "zero-copy", "out-of-core"] = "cpu-centric"
    backing_options: str = ""
    placement: Literal["replicate", "partition"] = "replicate"
    lookup: Literal["auto", "dense", "hash"] = "auto"
    victim_buffer: bool = False
    victim_fraction: float = 0.05
    presample_batches: int = 0
    presample_fanouts: str = "10,5"
    presample_batch_size: int = 1024
    presample_seed: int = 1234
    hybrid_importance: Literal["presample", "degree"] = PolicyConfig.hybrid_importance
    hybrid_prior: float = PolicyConfig.hybrid_prior
    hybrid_recency: float = PolicyConfig.hybrid_recency
    hybrid_lookahead: int = PolicyConfig.hybrid_lookahead
    superbatch: int = 64

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy={self.policy!r}; valid: {', '.join(POLICIES)}")
        if self.backing not in BACKINGS:
            raise ValueError(f"backing={self.backing!r}; valid: {', '.join(BACKINGS)}")
        if self.cache_fraction is not None and self.cache_bytes is not None:
            raise ValueError("give cache_fraction or cache_bytes, not both")
        if self.cache_fraction is not None and not 0.0 <= self.cache_fraction <= 1.0:
            raise ValueError("cache_fraction must be in [0, 1]")
        if self.cache_bytes is not None and self.cache_bytes < 0:
            raise ValueError("cache_bytes must be >= 0")
        if not 0.0 < self.victim_fraction <= 1.0:
            raise ValueError("victim_fraction must be in (0, 1]")
        if self.victim_buffer and self.placement == "partition":
            raise ValueError("victim_buffer works with placement=replicate (each rank's ring serves its own misses)")
        if self.presample_batches < 0:
            raise ValueError("presample_batches must be >= 0 (0: one epoch)")
        if self.presample_batch_size < 1 or self.superbatch < 1:
            raise ValueError("presample_batch_size and superbatch must be >= 1")
        parse_fanouts(self.presample_fanouts)
        parse_backing_options(self.backing_options)
        self.policy_config(1)

    def policy_config(self, num_train: int) -> PolicyConfig:
        """The knobs ``accessbench.kernels.strategies.cached.policies`` takes, for a graph with ``num_train`` training ids."""
        return PolicyConfig(hybrid_importance=self.hybrid_importance, hybrid_prior=self.hybrid_prior,
                            hybrid_recency=self.hybrid_recency, hybrid_lookahead=self.hybrid_lookahead,
                            presample_batches=epoch_batches(self.presample_batches, num_train,
                                                            self.presample_batch_size))

    def budget_bytes(self, feature_bytes: int) -> int:
        """The cache's byte budget for a table of ``feature_bytes``."""
        if self.cache_bytes is not None:
            return int(self.cache_bytes)
        fraction = DEFAULT_CACHE_FRACTION if self.cache_fraction is None else self.cache_fraction
        return int(fraction * feature_bytes)
