"""accessbench kernels: the ``AccessStrategy`` interface, the registry, the strategies and their GPU kernels."""

from kernels.base import PHASES, AccessStrategy, LoadedBatch, NoOptions, check_ids
from kernels.errors import AccessBenchError, InvalidIds, InvalidOptions, StoreError, StrategyUnavailable
from kernels.registry import availability, create, get, names, parse_options, register
from kernels.types import TIERS, AccessStats, Block, FeatureFile, GraphData, SampledBatch

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
