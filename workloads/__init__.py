"""accessbench workloads: graph stores, the synthetic generator, importers, presets, seed batches and models."""

from kernels.sampling import sample_blocks, sample_neighbors
from workloads.config import Workload, WorkloadError, load_workload, preset_names
from workloads.generate import GraphSpec, generate
from workloads.graphs import materialise
from workloads.store import StoreWriter, open_store, verify_store

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
