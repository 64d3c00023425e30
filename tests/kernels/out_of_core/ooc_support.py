"""Helpers for the out-of-core tests (no tests here): stores on a real disk, references read without mapping."""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from accessbench.kernels.types import FeatureFile, GraphData
from accessbench.workloads.generate import GraphSpec, generate
from accessbench.workloads.store import open_store


def require_odirect(directory: Path) -> None:
    """Skip the calling test when the filesystem holding ``directory`` refuses O_DIRECT."""
    probe = directory / ".odirect-probe"
    probe.write_bytes(b"\0" * 8192)
    try:
        fd = os.open(probe, os.O_RDONLY | os.O_DIRECT)
        try:
            page = mmap.mmap(-1, 4096)  # anonymous memory is page-aligned
            os.preadv(fd, [page], 0)
            page.close()
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"the filesystem at {directory} refuses O_DIRECT")
        raise
    finally:
        probe.unlink(missing_ok=True)


def make_store(directory: Path, *, num_nodes: int = 3000, feat_dim: int = 128, dtype: str = "float32",
               avg_degree: float = 6, seed: int = 5) -> GraphData:
    """A generated store opened from disk (features memory-mapped, never touched here)."""
    require_odirect(directory)
    path = generate(GraphSpec(num_nodes=num_nodes, avg_degree=avg_degree, feat_dim=feat_dim, dtype=dtype, seed=seed,
                              train_fraction=0.5), directory / f"store-{num_nodes}-{feat_dim}-{dtype}")
    return open_store(path)


def reference_features(graph: GraphData) -> torch.Tensor:
    """The feature table read with plain buffered reads into memory (the store's mapping stays untouched, so the
    strategy can drop the file's pages)."""
    ff = graph.feature_file
    assert ff is not None
    raw = torch.from_numpy(np.fromfile(ff.path, dtype=np.uint8))
    n = graph.num_nodes
    rows = raw[ff.offset:ff.offset + n * ff.row_stride].view(n, ff.row_stride)[:, :ff.row_bytes].contiguous()
    return rows.view(graph.dtype)


def padded_graph(directory: Path, *, num_nodes: int = 700, feat_dim: int = 37, dtype: torch.dtype = torch.float16,
                 offset: int = 100, pad: int = 6, seed: int = 0) -> tuple[GraphData, torch.Tensor]:
    """A graph whose feature file has a header of ``offset`` bytes and ``pad`` bytes after every row, so rows start
    at odd offsets and straddle pages. Returns the graph and the true features."""
    require_odirect(directory)
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(num_nodes, feat_dim, generator=g).to(dtype)
    row_bytes = feat_dim * feats.element_size()
    stride = row_bytes + pad
    blob = torch.randint(0, 256, (offset + num_nodes * stride + 5,), dtype=torch.uint8, generator=g)
    body = blob[offset:offset + num_nodes * stride].view(num_nodes, stride)
    body[:, :row_bytes] = feats.view(torch.uint8).view(num_nodes, row_bytes)
    path = directory / f"padded-{feat_dim}-{offset}-{pad}.bin"
    blob.numpy().tofile(path)
    deg = torch.randint(0, 8, (num_nodes,), generator=g)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(deg, 0)
    indices = torch.randint(0, num_nodes, (int(indptr[-1]),), generator=g)
    graph = GraphData(num_nodes, indptr, indices, feats, feature_file=FeatureFile(path, offset, stride, row_bytes),
                      train_ids=torch.arange(0, num_nodes, 2))
    return graph, feats.clone()
