"""Seed batches for ``sample``/``train`` mode and random id sets for ``gather`` mode, seeded and reproducible."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from accessbench.kernels.types import GraphData

__all__ = ["random_ids", "seed_batches"]


def seed_batches(graph: GraphData, batch_size: int, *, seed: int, steps: int) -> Iterator[torch.Tensor]:
    """``steps`` batches of training seeds (int64 ``[batch_size]``), epochs of seeded shuffles of the train ids."""
    train = graph.train_ids if graph.train_ids is not None and graph.train_ids.numel() else torch.arange(graph.num_nodes)
    g = torch.Generator().manual_seed(seed)
    perm = train[torch.randperm(train.numel(), generator=g)]
    pos = 0
    for _ in range(steps):
        if pos + batch_size > perm.numel():
            perm = train[torch.randperm(train.numel(), generator=g)]
            pos = 0
        yield perm[pos:pos + batch_size].clone()
        pos += batch_size


def random_ids(num_nodes: int, count: int, *, generator: torch.Generator) -> torch.Tensor:
    """``count`` uniformly random ids in ``[0, num_nodes)`` (with repeats, unsorted), int64 on the CPU."""
    return torch.randint(0, num_nodes, (count,), generator=generator, dtype=torch.int64)
