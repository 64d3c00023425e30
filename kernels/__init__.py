"""accessbench kernels: the ``AccessStrategy`` interface, the registry, the strategies and their GPU kernels."""

from kernels.base import PHASES, AccessStrategy, LoadedBatch, NoOptions, check_ids
from kernels.errors import AccessBenchError, InvalidIds, InvalidOptions, StoreError, StrategyUnavailable
from kernels.registry import availability, create, get, names, parse_options, register
from kernels.types import TIERS, AccessStats, Block, FeatureFile, GraphData, SampledBatch

__all__ = [
    "PHASES", "TIERS", "AccessStrategy", "LoadedBatch", "NoOptions", "check_ids",
    "AccessBenchError", "InvalidIds", "InvalidOptions", "StoreError", "StrategyUnavailable",
    "availability", "create", "get", "names", "parse_options", "register",
    "AccessStats", "Block", "FeatureFile", "GraphData", "SampledBatch",
]
