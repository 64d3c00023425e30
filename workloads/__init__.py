"""accessbench workloads: graph stores, the synthetic generator, importers, presets, seed batches and models."""

from accessbench.kernels.sampling import sample_blocks, sample_neighbors

from .config import Workload, WorkloadError, load_workload, preset_names
from .generate import GraphSpec, generate
from .graphs import materialise
from .store import StoreWriter, open_store, verify_store

__all__ = [
    "GraphSpec",
    "StoreWriter",
    "Workload",
    "WorkloadError",
    "generate",
    "load_workload",
    "materialise",
    "open_store",
    "preset_names",
    "sample_blocks",
    "sample_neighbors",
    "verify_store",
]
