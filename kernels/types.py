"""Data types every strategy consumes or produces: the graph, a sampled batch, access counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from accessbench import schema

__all__ = ["TIERS", "AccessStats", "Block", "FeatureFile", "GraphData", "SampledBatch"]

#: Tiers that bytes can move through, in the order reports show them.
TIERS: tuple[str, ...] = schema.TIERS


@dataclass(frozen=True)
class FeatureFile:
    """Where the feature rows live on disk, for strategies that read the file themselves.

    Row ``i`` occupies bytes ``[offset + i * row_stride, offset + i * row_stride + row_bytes)`` of ``path``.
    """

    path: Path
    offset: int  # bytes from the start of the file to row 0
    row_stride: int  # bytes between the starts of consecutive rows
    row_bytes: int  # bytes of one row's payload (feat_dim * element size)


@dataclass(frozen=True)
class GraphData:
    """A graph in CSR form with one feature row per node.

    ``indptr``: int64 ``[N + 1]``; ``indices``: int32 or int64 ``[E]`` (neighbours of node ``v`` are
    ``indices[indptr[v]:indptr[v + 1]]``); ``features``: ``[N, D]``, possibly memory-mapped from ``feature_file``.
    """

    num_nodes: int
    indptr: torch.Tensor
    indices: torch.Tensor
    features: torch.Tensor
    feature_file: FeatureFile | None = None
    labels: torch.Tensor | None = None
    train_ids: torch.Tensor | None = None
    num_classes: int | None = None
    name: str = "graph"

    def __post_init__(self) -> None:
        if self.indptr.dtype != torch.int64 or self.indptr.dim() != 1 or self.indptr.numel() != self.num_nodes + 1:
            raise ValueError(f"indptr must be int64 [num_nodes + 1 = {self.num_nodes + 1}]")
        if self.indices.dtype not in (torch.int32, torch.int64) or self.indices.dim() != 1:
            raise ValueError("indices must be a 1-D int32 or int64 tensor")
        if self.features.dim() != 2 or self.features.shape[0] != self.num_nodes:
            raise ValueError(f"features must be [num_nodes = {self.num_nodes}, D], got {tuple(self.features.shape)}")

    @property
    def dtype(self) -> torch.dtype:
        """Element type of the feature rows."""
        return self.features.dtype

    @property
    def feat_dim(self) -> int:
        """Feature width D (elements per row)."""
        return int(self.features.shape[1])

    @property
    def row_bytes(self) -> int:
        """Bytes of one feature row."""
        return self.feat_dim * self.features.element_size()

    @property
    def num_edges(self) -> int:
        """Number of directed edges E in the CSR."""
        return int(self.indices.numel())

    @property
    def feature_bytes(self) -> int:
        """Bytes of the whole feature table."""
        return self.num_nodes * self.row_bytes

    def degrees(self) -> torch.Tensor:
        """Out-degree of every node, int64 ``[N]``."""
        return self.indptr[1:] - self.indptr[:-1]


@dataclass(frozen=True)
class Block:
    """One hop of a sampled computation graph, in local ids.

    Destination nodes are the first ``num_dst`` nodes of the source side (dst side first), so
    ``edge_index[0]`` indexes sources ``[0, num_src)`` and ``edge_index[1]`` indexes destinations ``[0, num_dst)``.
    ``edge_index``: int64 ``[2, E_block]``, rows (src, dst) as PyG message passing expects.
    """

    num_src: int
    num_dst: int
    edge_index: torch.Tensor

    @property
    def num_edges(self) -> int:
        """Edges sampled in this hop."""
        return int(self.edge_index.shape[1])


@dataclass(frozen=True)
class SampledBatch:
    """A mini-batch: seeds, the unique nodes whose features it needs (seeds first), one block per hop.

    ``blocks[0]`` is the hop nearest the seeds (its dst side is the seeds); the model consumes them in reverse.
    All tensors live on the device the strategy sampled on.
    """

    seeds: torch.Tensor
    node_ids: torch.Tensor
    blocks: tuple[Block, ...]

    @property
    def num_edges(self) -> int:
        """Edges sampled over all hops."""
        return sum(b.num_edges for b in self.blocks)


@dataclass
class AccessStats:
    """Counters since the last ``reset_stats()``.

    ``bytes_by_tier`` counts bytes moved through each tier in ``TIERS`` (host-memory reads, host-to-device copies,
    disk reads, peer reads, device-memory reads). ``hits``/``misses`` are keyed by cache tier where the strategy has
    several; strategies without a cache leave them empty (not zero: "no cache" is not "every access missed").
    """

    rows: int = 0
    bytes_needed: int = 0
    bytes_by_tier: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    io_ops: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def add_bytes(self, tier: str, nbytes: int) -> None:
        """Count ``nbytes`` moved through ``tier`` (one of ``TIERS``)."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; valid: {', '.join(TIERS)}")
        self.bytes_by_tier[tier] = self.bytes_by_tier.get(tier, 0) + int(nbytes)

    def count_rows(self, rows: int, row_bytes: int) -> None:
        """Count ``rows`` rows of ``row_bytes`` bytes requested by the caller."""
        self.rows += int(rows)
        self.bytes_needed += int(rows) * int(row_bytes)

    def merge(self, other: AccessStats) -> None:
        """Add ``other``'s counters into these (a batch's delta applied when the batch is consumed)."""
        self.rows += other.rows
        self.bytes_needed += other.bytes_needed
        for tier, n in other.bytes_by_tier.items():
            self.bytes_by_tier[tier] = self.bytes_by_tier.get(tier, 0) + n
        for mine, theirs in ((self.hits, other.hits), (self.misses, other.misses)):
            for tier, n in theirs.items():
                mine[tier] = mine.get(tier, 0) + n
        if other.io_ops is not None:
            self.io_ops = (self.io_ops or 0) + other.io_ops

    def hit_rate(self) -> float | None:
        """Fraction of requested rows served by any cache tier; None where the strategy has no cache."""
        if not self.hits and not self.misses:
            return None
        return sum(self.hits.values()) / self.rows if self.rows else None
