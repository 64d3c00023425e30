"""Oracle for the sampler tests: kernels/sampling.py as it was before issue 12 (copied verbatim below this note; only
the relative ``.types`` import became absolute, and the module docstring was replaced by this note).

Kept only as the reference the new sampler is checked against (same semantics, same distribution) and timed against in
benchmarks/bench_sampling.py and tests/bench/test_bench_sampling.py. Do not optimise it.
"""


from __future__ import annotations

from collections.abc import Sequence

import torch

from accessbench.kernels.types import Block, SampledBatch

__all__ = ["sample_blocks", "sample_neighbors", "unique_first_occurrence", "validate_fanouts"]


def validate_fanouts(fanouts: Sequence[int]) -> list[int]:
    """Fanouts as a list of ints; each must be positive or -1 (all neighbours)."""
    out = [int(f) for f in fanouts]
    if not out:
        raise ValueError("fanouts must name at least one hop")
    for f in out:
        if f == 0 or f < -1:
            raise ValueError(f"fanout {f} is invalid; use a positive count or -1 for all neighbours")
    return out


def sample_neighbors(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    nodes: torch.Tensor,
    fanout: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample up to ``fanout`` neighbours of each of ``nodes`` (int64 ``[n]``).

    ``indptr``/``indices`` may live on any device that can read them (including pinned host memory viewed from the
    GPU); the draws happen on ``nodes.device``. Returns ``(dst_pos, nbr)``: int64 ``[m]`` positions into ``nodes``
    and the global ids of the sampled neighbours, grouped by node in ``nodes`` order.
    """
    dev = nodes.device
    start = indptr[nodes].to(dev)
    deg = indptr[nodes + 1].to(dev) - start
    n = nodes.numel()
    if fanout < 0:
        take = deg
    else:
        take = torch.clamp(deg, max=fanout)
    total = int(take.sum())
    dst_pos = torch.repeat_interleave(torch.arange(n, device=dev), take)
    if total == 0:
        return dst_pos, torch.empty(0, dtype=torch.int64, device=dev)
    # Offsets (within each node's neighbour list) of the chosen edges, grouped by node.
    first = torch.cumsum(take, 0) - take  # where each node's picks start in the output
    rank = torch.arange(total, device=dev) - first[dst_pos]  # 0..take-1 within a node
    offsets = rank.clone()  # nodes that keep all neighbours take offsets 0..deg-1
    if fanout > 0:
        big = deg > fanout
        if bool(big.any()):
            big_idx = torch.nonzero(big).flatten()
            chosen = _floyd(deg[big_idx], fanout, generator)  # [b, fanout]
            pos = first[big_idx].unsqueeze(1) + torch.arange(fanout, device=dev).unsqueeze(0)
            offsets[pos.flatten()] = chosen.flatten()
    edge_pos = start[dst_pos] + offsets
    nbr = indices[edge_pos.to(indices.device)].to(dev, torch.int64)
    return dst_pos, nbr


def _floyd(deg: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Robert Floyd's sampling of k distinct offsets in ``[0, deg)`` for every row (all ``deg > k``)."""
    b = deg.numel()
    dev = deg.device
    chosen = torch.empty(b, k, dtype=torch.int64, device=dev)
    u = torch.rand(b, k, generator=generator, device=dev, dtype=torch.float64)
    for i in range(k):
        j = deg - k + i  # draw from [0, j]
        t = torch.minimum((u[:, i] * (j + 1).to(torch.float64)).to(torch.int64), j)
        if i:
            dup = (chosen[:, :i] == t.unsqueeze(1)).any(1)
            t = torch.where(dup, j, t)
        chosen[:, i] = t
    return chosen


def unique_first_occurrence(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``ids`` in first-occurrence order, and the inverse map (``uniq[inv] == ids``)."""
    if ids.numel() == 0:
        return ids.clone(), torch.empty(0, dtype=torch.int64, device=ids.device)
    uniq_sorted, inv_sorted = torch.unique(ids, sorted=True, return_inverse=True)
    pos = torch.arange(ids.numel(), device=ids.device)
    first = torch.full((uniq_sorted.numel(),), ids.numel(), dtype=torch.int64, device=ids.device)
    first.scatter_reduce_(0, inv_sorted, pos, reduce="amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=ids.device)
    return uniq_sorted[order], rank[inv_sorted]


def sample_blocks(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    seeds: torch.Tensor,
    fanouts: Sequence[int],
    generator: torch.Generator,
) -> SampledBatch:
    """Multi-hop sampling from ``seeds``; returns blocks in local ids and the unique node ids (seeds first).

    Duplicate seeds are merged (the batch's seeds are its unique seeds, first occurrence order).
    """
    fanouts = validate_fanouts(fanouts)
    seeds = seeds.to(torch.int64)
    frontier, _ = unique_first_occurrence(seeds)
    nodes = frontier
    blocks: list[Block] = []
    for fanout in fanouts:
        dst_pos, nbr = sample_neighbors(indptr, indices, nodes, fanout, generator)
        merged, inv = unique_first_occurrence(torch.cat([nodes, nbr]))
        src_local = inv[nodes.numel():]
        edge_index = torch.stack([src_local, dst_pos])
        blocks.append(Block(num_src=merged.numel(), num_dst=nodes.numel(), edge_index=edge_index))
        nodes = merged
    return SampledBatch(seeds=frontier, node_ids=nodes, blocks=tuple(blocks))
