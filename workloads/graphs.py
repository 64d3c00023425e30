"""Turn a workload into a ``GraphData``: open its store, or generate its synthetic graph once into the cache."""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

from accessbench.kernels.types import GraphData

from .config import Workload, cache_dir, spec_key
from .generate import GraphSpec, generate
from .store import MANIFEST, open_store

__all__ = ["ensure_store", "graph_path", "materialise"]


def graph_path(workload: Workload) -> Path:
    """Where the workload's store is (or will be, once generated)."""
    if workload.store is not None:
        return Path(workload.store)
    assert workload.graph is not None
    return cache_dir() / "graphs" / spec_key(workload.graph)


def ensure_store(spec: GraphSpec, path: Path, *, name: str) -> Path:
    """Generate ``spec`` at ``path`` unless a complete store is there; safe across concurrent processes."""
    if (path / MANIFEST).is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / MANIFEST).is_file():
            tmp = path.parent / f".{path.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            generate(spec, tmp, name=name)
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
    return path


def materialise(workload: Workload) -> GraphData:
    """The workload's graph, validated and memory-mapped."""
    path = graph_path(workload)
    if workload.graph is not None:
        ensure_store(workload.graph, path, name=workload.name)
    return open_store(path)
