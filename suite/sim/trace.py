"""Trace recording: a workload's per-batch id trace, for the simulator to replay (``accessbench trace``).

Draws ``ranks x steps`` batches of seeds (the workload's seeded shuffle of its training ids), gives global batch ``j``
to rank ``j % ranks`` (each rank trains on its own seeds), samples each with the suite's sampler (rank ``r`` uses a
generator seeded ``seed + r``) and keeps each batch's unique node ids in order, seeds first. The file also carries
the static importance scores the cache policies need (in-degree, and the frequency over K pre-sampled batches), so
the simulator never needs the graph.
"""

from __future__ import annotations

import time

import torch

from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.cached.importance import degree_importance, epoch_batches, presample_importance
from accessbench.kernels.types import GraphData
from accessbench.suite.measure.distributed import batch_rank, rank_seed
from accessbench.workloads.batches import seed_batches
from accessbench.workloads.config import Workload
from accessbench.workloads.graphs import materialise

from .simulator import Trace

__all__ = ["record_trace"]


def record_trace(workload: Workload, *, steps: int, ranks: int = 1, presample_batches: int = 0,
                 presample_seed: int = 1234, graph: GraphData | None = None) -> Trace:
    """Sample ``ranks x steps`` batches of ``workload`` and keep their unique ids (see the module docstring)."""
    if steps < 1 or ranks < 1:
        raise ValueError("steps and ranks must be >= 1")
    if graph is None:
        graph = materialise(workload)
    gens = [torch.Generator().manual_seed(rank_seed(workload.seed, r)) for r in range(ranks)]
    batches: list[list[torch.Tensor]] = [[] for _ in range(ranks)]
    start = time.perf_counter()
    for j, seeds in enumerate(seed_batches(graph, workload.batch_size, seed=workload.seed, steps=steps * ranks)):
        r = batch_rank(j, ranks)  # the rule `accessbench run` under torchrun uses (accessbench.suite.measure.distributed)
        batches[r].append(sample_blocks(graph.indptr, graph.indices, seeds, workload.fanouts, gens[r]).node_ids)
    sample_s = time.perf_counter() - start
    num_train = int(graph.train_ids.numel()) if graph.train_ids is not None and graph.train_ids.numel() else \
        graph.num_nodes
    presample_batches = epoch_batches(presample_batches, num_train, workload.batch_size)
    importance = {
        "degree": degree_importance(graph),
        "presample": presample_importance(graph, fanouts=workload.fanouts, batch_size=workload.batch_size,
                                          batches=presample_batches, seed=presample_seed),
    }
    header = {
        "workload": workload.name, "graph": graph.name, "num_nodes": graph.num_nodes, "num_edges": graph.num_edges,
        "feat_dim": graph.feat_dim, "dtype": str(graph.dtype).removeprefix("torch."), "row_bytes": graph.row_bytes,
        "batch_size": workload.batch_size, "fanouts": list(workload.fanouts), "seed": workload.seed,
        "steps": steps, "ranks": ranks, "num_train": num_train,
        "rank_rule": "global batch j -> rank j % ranks; rank r samples with a generator seeded seed + r",
        "presample": {"batches": presample_batches, "fanouts": list(workload.fanouts),
                      "batch_size": workload.batch_size, "seed": presample_seed},
        "rows": sum(int(b.numel()) for rank in batches for b in rank), "sample_s": round(sample_s, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return Trace(header, batches, importance)
