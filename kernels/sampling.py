"""Uniform GraphSAGE-style neighbour sampling in vectorised torch ops (CPU or GPU tensors, seeded).

Semantics, shared by every strategy's ``sample`` so results are comparable:
- hop k draws ``fanouts[k]`` neighbours of every frontier node, without replacement where its degree allows;
  a node with degree <= fanout keeps all its neighbours; a fanout of -1 keeps all neighbours;
- draws are Robert Floyd's algorithm, vectorised over its steps (see ``_floyd_offsets``): a node with degree d and
  fanout k gets each k-subset with equal probability, the work is O(k^2) per node (O(k log k) for k > 32),
  independent of d;
- the frontier of hop k+1 is the unique set of hop-k sources, previous frontier first, then new nodes in
  first-occurrence order (relabelled with a reusable node -> local-id table touched only where used, no sorts);
- random numbers come from ``generator`` only, so equal seeds + equal generator state on the same device give
  equal samples. Samples are NOT equal to the pre-issue-12 sampler's for the same seed (it drew random numbers only
  for high-degree nodes, this one draws for every node): same distribution, tested in
  tests/kernels/test_sampling_distribution.py against tests/kernels/sampling_reference.py;
- on CUDA one host synchronisation per hop (two for a hop with fanout -1, whose output size is data dependent
  before the draw): every device -> host read goes through ``_host_ints``. docs/SAMPLING.md has the details.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch

from .types import Block, SampledBatch

__all__ = ["sample_blocks", "sample_neighbors", "unique_first_occurrence", "validate_fanouts"]

#: Table entries below ``_POS`` are local ids; ``_POS + p`` marks "first seen at position p" during a merge.
_POS = 1 << 30
#: Table entry of a node that is in no batch.
_EMPTY = (1 << 31) - 1
#: Fanouts above this detect repeated draws by a per-row sort instead of all-pairs compares.
_PAIRWISE_MAX = 32
#: Free tables kept per (device, number of nodes); at most this many keys are kept.
_POOL_KEYS = 4


def validate_fanouts(fanouts: Sequence[int]) -> list[int]:
    """Fanouts as a list of ints; each must be positive or -1 (all neighbours)."""
    out = [int(f) for f in fanouts]
    if not out:
        raise ValueError("fanouts must name at least one hop")
    for f in out:
        if f == 0 or f < -1:
            raise ValueError(f"fanout {f} is invalid; use a positive count or -1 for all neighbours")
    return out


def _host_ints(t: torch.Tensor) -> list[int]:
    """The sampler's only device -> host read: the values of a small int tensor (one synchronisation on CUDA)."""
    return t.cpu().tolist()


# --------------------------------------------------------------------------------------------------- node table


class _TablePool:
    """Reusable int32 ``[num_nodes + 1]`` node -> local-id tables (last entry: a dump slot), all ``_EMPTY`` when
    free. One per concurrent sampler call (the prefetch thread and the main thread each borrow their own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: OrderedDict[tuple[str, int], list[tuple[torch.Tensor, torch.cuda.Event | None]]] = OrderedDict()

    @contextlib.contextmanager
    def borrow(self, num_nodes: int, device: torch.device) -> Iterator[torch.Tensor]:
        key = (str(device), num_nodes)
        with self.lock:
            slots = self.free.get(key)
            item = slots.pop() if slots else None
        if item is None:
            table = torch.full((num_nodes + 1,), _EMPTY, dtype=torch.int32, device=device)
        else:
            table, ready = item
            if ready is not None:  # the reset of its last user (maybe on another stream) comes first
                torch.cuda.current_stream(device).wait_event(ready)
        try:
            yield table
        except BaseException:
            table.fill_(_EMPTY)  # which entries were touched is unknown: clear all (error path only)
            raise
        ready = None
        if table.is_cuda:
            ready = torch.cuda.Event()
            ready.record(torch.cuda.current_stream(device))
        with self.lock:
            self.free.setdefault(key, []).append((table, ready))
            self.free.move_to_end(key)
            while len(self.free) > _POOL_KEYS:
                self.free.popitem(last=False)


_TABLES = _TablePool()


def _merge(table: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor | None, base: torch.Tensor | int
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give the ``ids`` (int64 ``[M]``, entries where ``valid`` is False ignored) not yet in ``table`` the local ids
    ``base, base+1, ...`` in first-occurrence order, and record them in ``table``.

    Returns ``(local, is_new, new_rank)``: int64 ``[M]`` local id of every entry (garbage where invalid), bool ``[M]``
    True at the first occurrence of a new id, int64 ``[M]`` inclusive count of new ids up to each entry.
    """
    m = ids.numel()
    if m >= _POS:
        raise ValueError(f"a hop of {m} sampled ids is more than the sampler's limit of {_POS - 1}")
    dump = table.numel() - 1
    key = ids if valid is None else torch.where(valid, ids, dump)
    pos = torch.arange(_POS, _POS + m, dtype=torch.int32, device=ids.device)
    table.scatter_reduce_(0, key, pos, reduce="amin")
    seen = table.index_select(0, key)
    is_new = seen == pos
    if valid is not None:
        is_new &= valid
    new_rank = torch.cumsum(is_new, 0)
    first = (seen.to(torch.int64) - _POS).clamp_(0, max(m - 1, 0))
    local = torch.where(seen < _POS, seen.to(torch.int64), new_rank.index_select(0, first) - 1 + base)
    table.scatter_(0, key, local.to(torch.int32))  # every occurrence of an id writes the same value
    return local, is_new, new_rank


def _compact(values: torch.Tensor, slot: torch.Tensor, size: int) -> torch.Tensor:
    """``out[:size]`` with ``out[slot[i]] = values[..., i]``; slots ``== size`` are dropped (no boolean masks, which
    would synchronise)."""
    out = values.new_empty((*values.shape[:-1], size + 1))
    return out.scatter_(-1, slot.expand_as(values), values)[..., :size]


# --------------------------------------------------------------------------------------------------- draws


def _floyd_offsets(deg: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct offsets in ``[0, deg)`` per row, uniform over k-subsets, column-major (int64 ``[k, n]``: draw i
    of row r at ``[i, r]``); rows with ``deg <= k`` get ``0..k-1`` (the caller keeps the first ``deg``).

    Floyd's algorithm draws ``t_i`` uniform in ``[0, j_i]``, ``j_i = d - k + i``, and keeps ``t_i`` unless it was
    already chosen, in which case it keeps ``j_i``. ``t_i`` was already chosen iff it equals an earlier draw ``t_m``
    (``repeat_i``), or it equals ``j_m`` for the one ``m = t_i - (d - k) < i`` and step m collided. That is a pointer
    chain to strictly smaller steps, resolved for all steps at once by pointer doubling (log2 k gathers), so no op
    runs once per step.
    """
    n = deg.numel()
    dev = deg.device
    steps = torch.arange(k, device=dev).unsqueeze(1)  # [k, 1]
    low = deg - k  # [n]
    j = low + steps  # [k, n]
    u = torch.rand(k, n, generator=generator, device=dev, dtype=torch.float64)
    t = torch.minimum((u * (j + 1)).to(torch.int64), j)
    repeat = _repeats(t)
    m = t - low
    ptr = torch.where(~repeat & (m >= 0) & (m < steps), m, steps)
    for _ in range(max(k - 1, 1).bit_length()):
        ptr = ptr.gather(0, ptr)
    collided = repeat.gather(0, ptr)
    chosen = torch.where(collided, j, t)
    return torch.where(deg > k, chosen, steps)


def _repeats(t: torch.Tensor) -> torch.Tensor:
    """bool ``[k, n]``: ``t[i, r]`` equals some ``t[m, r]`` with ``m < i``."""
    k, n = t.shape
    if k == 1:
        return torch.zeros_like(t, dtype=torch.bool)
    if k <= _PAIRWISE_MAX:  # all pairs, one contiguous compare per distance s = i - m
        out = torch.zeros_like(t, dtype=torch.bool)
        for s in range(1, k):
            out[s:] |= t[s:] == t[:-s]
        return out
    srt, order = torch.sort(t, dim=0, stable=True)  # equal draws: the earliest step first
    same = torch.cat([torch.zeros(1, n, dtype=torch.bool, device=t.device), srt[1:] == srt[:-1]], 0)
    return torch.empty_like(same).scatter_(0, order, same)


def _draw(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor | None, fanout: int,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Draw neighbours of ``rows`` (int64 ``[n]``; rows where ``keep`` is False draw none) as a padded grid.

    Returns ``(row, nbr, valid, take)``, the first three flat ``[M]``: the row index of each slot, the neighbour's
    global id (int64), whether the slot holds an edge (None: all do), and int64 ``[n]`` edges per row. For
    ``fanout >= 0`` the grid is ``[n, fanout]`` (no synchronisation); for -1 it is exact (one synchronisation).
    """
    dev = rows.device
    n = rows.numel()
    pair = torch.stack([rows, rows + 1]).reshape(-1).to(indptr.device)
    bounds = indptr.index_select(0, pair).to(dev, torch.int64).view(2, n)  # [2, n], one access
    start = bounds[0]
    deg = bounds[1] - start
    if keep is not None:
        deg = deg * keep
    if fanout >= 0:
        take = deg.clamp(max=fanout)
        offsets = _floyd_offsets(deg, fanout, generator).t()  # [n, fanout], row-major: edges grouped by row
        valid2 = torch.arange(fanout, device=dev) < take.unsqueeze(1)
        pos2 = torch.where(valid2, start.unsqueeze(1) + offsets, 0)
        row = torch.arange(n, device=dev).repeat_interleave(fanout, output_size=n * fanout)
        pos, valid = pos2.reshape(-1), valid2.reshape(-1)
    else:
        take = deg
        csum = torch.cumsum(take, 0)
        total = _host_ints(csum[-1:])[0] if n else 0
        row = torch.repeat_interleave(torch.arange(n, device=dev), take, output_size=total)
        pos = (start - csum + take).index_select(0, row) + torch.arange(total, device=dev)
        valid = None
    if indices.numel() == 0:  # no edges at all: every slot is padding
        nbr = torch.zeros(pos.numel(), dtype=torch.int64, device=dev)
    else:
        nbr = indices.index_select(0, pos.to(indices.device)).to(dev, torch.int64)
    return row, nbr, valid, take


def _edge_slots(take: torch.Tensor, valid: torch.Tensor | None, fanout: int, total: torch.Tensor
                ) -> torch.Tensor | None:
    """Where each grid slot goes in the compact edge list (``total`` for padding); None when already compact."""
    if valid is None:
        return None
    first = torch.cumsum(take, 0) - take
    slot = first.unsqueeze(1) + torch.arange(fanout, device=take.device)
    return torch.where(valid.view(-1, fanout), slot, total).view(-1)


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
    and the global ids of the sampled neighbours, grouped by node in ``nodes`` order. One host synchronisation.
    """
    nodes = nodes.to(torch.int64)
    row, nbr, valid, take = _draw(indptr, indices, nodes, None, fanout, generator)
    if valid is None:
        return row, nbr
    total_t = take.sum().reshape(1)
    total = _host_ints(total_t)[0]
    slot = _edge_slots(take, valid, fanout, total_t)
    assert slot is not None
    out = _compact(torch.stack([row, nbr]), slot, total)
    return out[0], out[1]


def sample_blocks(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    seeds: torch.Tensor,
    fanouts: Sequence[int],
    generator: torch.Generator,
) -> SampledBatch:
    """Multi-hop sampling from ``seeds``; returns blocks in local ids and the unique node ids (seeds first).

    Duplicate seeds are merged (the batch's seeds are its unique seeds, first occurrence order). The merge of the
    seeds is folded into hop 1, so a batch costs one host synchronisation per hop (plus one per fanout of -1).
    """
    fanouts = validate_fanouts(fanouts)
    dev = seeds.device
    seeds = seeds.to(torch.int64).reshape(-1)
    with _TABLES.borrow(indptr.numel() - 1, dev) as table:
        seed_local, seed_new, seed_rank = _merge(table, seeds, None, 0)
        rows, keep = seeds, seed_new  # hop 1 draws for first occurrences only
        row_local: torch.Tensor | None = seed_local
        nodes: torch.Tensor | None = None
        num_nodes_t: torch.Tensor = seed_rank[-1:] if seeds.numel() else torch.zeros(1, dtype=torch.int64, device=dev)
        blocks: list[tuple[torch.Tensor, int]] = []
        sizes: list[int] = []
        for fanout in fanouts:
            row, nbr, valid, take = _draw(indptr, indices, rows, keep, fanout, generator)
            src, is_new, new_rank = _merge(table, nbr, valid, num_nodes_t.reshape(()))
            total_t = take.sum().reshape(1)
            new_t = new_rank[-1:] if nbr.numel() else torch.zeros(1, dtype=torch.int64, device=dev)
            num_before, total, num_new = _host_ints(torch.cat([num_nodes_t, total_t, new_t]))
            if nodes is None:  # hop 1: the unique seeds
                nodes = _compact(seeds, torch.where(seed_new, seed_rank - 1, num_before), num_before)
            sizes.append(num_before)
            slot = _edge_slots(take, valid, fanout, total_t)
            edge_index = torch.stack([src, row if row_local is None else row_local.index_select(0, row)])
            if slot is not None:
                edge_index = _compact(edge_index, slot, total)
            blocks.append((edge_index, num_before + num_new))
            new_nodes = _compact(nbr, torch.where(is_new, new_rank - 1, num_new), num_new)
            nodes = torch.cat([nodes, new_nodes])
            rows, keep, row_local = nodes, None, None  # rows are their own local ids
            num_nodes_t = torch.full((1,), nodes.numel(), dtype=torch.int64, device=dev)
        assert nodes is not None
        table.index_fill_(0, nodes, _EMPTY)
        table[-1] = _EMPTY
    out = tuple(Block(num_src=num_src, num_dst=num_dst, edge_index=ei)
                for (ei, num_src), num_dst in zip(blocks, sizes))
    return SampledBatch(seeds=nodes[:sizes[0]], node_ids=nodes, blocks=out)


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
