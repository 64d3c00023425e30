"""The packing pass of the packed layout: write every planned batch's disk rows as one segment, then check that the
index matches the plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from accessbench.kernels.errors import StoreError
from accessbench.kernels.types import GraphData

from .packed import PackedIndex, PackedWriter
from .planner import BatchPlan

__all__ = ["write_packed"]


def write_packed(path: Path, plans: list[BatchPlan], graph: GraphData,
                 fetch: Callable[[torch.Tensor], torch.Tensor]) -> PackedIndex:
    """Write ``plans``' disk rows (read with ``fetch(ids) -> rows``) to ``path``; sets each plan's ``segment``."""
    ff = graph.feature_file
    assert ff is not None
    source = {"path": str(ff.path), "offset": ff.offset, "row_stride": ff.row_stride, "row_bytes": ff.row_bytes,
              "file_bytes": Path(ff.path).stat().st_size}
    writer = PackedWriter(path, row_bytes=graph.row_bytes, dtype=str(graph.dtype).replace("torch.", ""), source=source)
    try:
        for p in plans:
            disk_ids = p.disk_ids
            p.segment = writer.add(disk_ids, fetch(disk_ids))
        index = writer.finish()
    except BaseException:
        writer.abort()
        raise
    for p in plans:
        assert p.segment is not None
        if not torch.equal(index.segment_ids(p.segment), p.disk_ids):
            raise StoreError(f"packed index {index.index_path} does not match the planned batches")
    return index
