"""accessbench kernels: the ``AccessStrategy`` interface, the registry, the strategies and their GPU kernels."""

from .base import PHASES, AccessStrategy, LoadedBatch, NoOptions, check_ids
from .errors import AccessBenchError, InvalidIds, InvalidOptions, StoreError, StrategyUnavailable
from .registry import availability, create, get, names, parse_options, register
from .types import TIERS, AccessStats, Block, FeatureFile, GraphData, SampledBatch

__all__ = [
    "PHASES",
    "TIERS",
    "AccessBenchError",
    "AccessStats",
    "AccessStrategy",
    "Block",
    "FeatureFile",
    "GraphData",
    "InvalidIds",
    "InvalidOptions",
    "LoadedBatch",
    "NoOptions",
    "SampledBatch",
    "StoreError",
    "StrategyUnavailable",
    "availability",
    "check_ids",
    "create",
    "get",
    "names",
    "parse_options",
    "register",
]
