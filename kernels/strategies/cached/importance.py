"""Static importance scores for cache policies: in-degree and pre-sampling frequency, and hot-set selection.

Both scores are int64 ``[N]`` counts computed on the CPU, deterministically, so the real strategy and the simulator
(which reads them from a trace file) rank nodes identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from accessbench.kernels.sampling import sample_blocks, validate_fanouts
from accessbench.kernels.types import GraphData

_CHUNK = 1 << 26  # edges per bincount

__all__ = ["degree_importance", "epoch_batches", "parse_fanouts", "presample_importance", "rank_by_importance"]


def epoch_batches(batches: int, num_train: int, batch_size: int) -> int:
    """``batches``, or when it is 0 the batches in one epoch of ``num_train`` ids: ceil(num_train / batch_size)."""
    if batches < 0:
        raise ValueError("presample batches must be >= 0 (0: one epoch)")
    return batches if batches > 0 else max(1, -(-int(num_train) // int(batch_size)))


def parse_fanouts(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"10,5"`` (or a sequence of ints) as a validated tuple of fanouts."""
    if isinstance(text, str):
        parts = [p for p in text.replace(" ", "").split(",") if p]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"fanouts {text!r} must be comma-separated integers, e.g. 10,5") from None
    else:
        values = [int(v) for v in text]
    return tuple(validate_fanouts(values))


def degree_importance(graph: GraphData) -> torch.Tensor:
    """How many neighbour lists each node appears in (its in-degree in the CSR), int64 ``[N]``.

    A uniform neighbour sampler reaches a node through the lists that contain it, so this (not the out-degree) is
    the degree that predicts how hot a node's feature row is.
    """
    counts = torch.zeros(graph.num_nodes, dtype=torch.int64)
    for lo in range(0, graph.num_edges, _CHUNK):  # bounded memory for memory-mapped billion-edge graphs
        counts += torch.bincount(graph.indices[lo: lo + _CHUNK], minlength=graph.num_nodes)
    return counts


def presample_importance(graph: GraphData, *, fanouts: Sequence[int], batch_size: int, batches: int,
                         seed: int) -> torch.Tensor:
    """In how many of ``batches`` pre-sampled mini-batches each node's row is needed, int64 ``[N]`` (GNNLab).

    Seeds are drawn from the training ids (all nodes when there are none) by a generator seeded with ``seed``, apart
    from the measured batches; each batch is sampled with ``fanouts`` by the suite's sampler on the CPU.
    """
    if batches < 1 or batch_size < 1:
        raise ValueError("presample batches and batch size must be >= 1")
    gen = torch.Generator().manual_seed(int(seed))
    train = graph.train_ids if graph.train_ids is not None and graph.train_ids.numel() else None
    pool = int(train.numel()) if train is not None else graph.num_nodes
    counts = torch.zeros(graph.num_nodes, dtype=torch.int64)
    for _ in range(batches):
        pick = torch.randperm(pool, generator=gen)[: min(batch_size, pool)]
        seeds = train[pick].to(torch.int64) if train is not None else pick
        batch = sample_blocks(graph.indptr, graph.indices, seeds, fanouts, gen)
        counts[batch.node_ids] += 1
    return counts


def rank_by_importance(importance: torch.Tensor) -> torch.Tensor:
    """All node ids, most important first; ties go to the smaller id (a stable sort, equal on every device)."""
    return torch.sort(importance, descending=True, stable=True).indices
