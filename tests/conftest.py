"""Shared fixtures and the ``gpu`` marker: GPU tests skip with the reason where torch sees no CUDA device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels.types import GraphData


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch sees none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_graph(num_nodes: int = 300, feat_dim: int = 16, *, dtype: torch.dtype = torch.float32,
               max_degree: int = 30, seed: int = 0) -> GraphData:
    """A small random CSR graph with random features, in host memory (not on disk)."""
    g = torch.Generator().manual_seed(seed)
    deg = torch.randint(0, max_degree + 1, (num_nodes,), generator=g)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(deg, 0)
    indices = torch.randint(0, num_nodes, (int(indptr[-1]),), generator=g, dtype=torch.int32)
    feats = torch.randn(num_nodes, feat_dim, generator=g)
    if dtype.is_floating_point:
        feats = feats.to(dtype)
    else:
        feats = (feats * 40).to(dtype)
    return GraphData(num_nodes, indptr, indices, feats, train_ids=torch.arange(0, num_nodes, 3),
                     labels=torch.randint(0, 4, (num_nodes,), generator=g), num_classes=4, name="fixture")


@pytest.fixture
def small_graph() -> GraphData:
    """300 nodes, 16-wide fp32 rows, degrees 0..30."""
    return make_graph()


@pytest.fixture
def tiny_store(tmp_path: Path) -> Path:
    """A generated on-disk store of 2k nodes, 24-wide fp32 rows."""
    from accessbench.workloads.generate import GraphSpec, generate

    return generate(GraphSpec(num_nodes=2000, avg_degree=8, feat_dim=24, seed=5), tmp_path / "store")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated graphs go to a per-session temporary cache, never the user's."""
    monkeypatch.setenv("ACCESSBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def stored(graph: GraphData, path: Path) -> GraphData:
    """``graph`` written as an on-disk store at ``path`` and opened again (features memory-mapped from the file)."""
    from accessbench.workloads.store import StoreWriter, open_store

    with StoreWriter(path) as w:
        w.append("indptr", graph.indptr)
        w.append("indices", graph.indices)
        w.append("features", graph.features)
        if graph.labels is not None:
            w.append("labels", graph.labels.to(torch.int64))
        if graph.train_ids is not None:
            w.append("train_ids", graph.train_ids.to(torch.int64))
        w.finish(name=graph.name, num_classes=graph.num_classes)
    return open_store(path)
