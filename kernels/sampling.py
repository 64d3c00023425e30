"""Uniform GraphSAGE-style neighbour sampling in vectorised torch ops (CPU or GPU tensors, seeded).

Semantics, shared by every strategy's ``sample`` so results are comparable:
- hop k draws ``fanouts[k]`` neighbours of every frontier node, without replacement where its degree allows;
  a node with degree <= fanout keeps all its neighbours (no random numbers); a fanout of -1 keeps all neighbours;
- draws are Robert Floyd's algorithm, vectorised (see ``_floyd``): a node with degree d and fanout k gets each
  k-subset with equal probability; the work is O(k^2) per drawing node, independent of d;
- the frontier of hop k+1 is the unique set of hop-k sources, previous frontier first, then new nodes in
  first-occurrence order (relabelled with a reusable node -> local-id table touched only where used, no sorts);
- random numbers come from ``generator`` only, so equal seeds + equal generator state on the same device give
  equal samples. Samples are NOT equal to the pre-issue-12 sampler's for the same seed (the draws are consumed in
  another order): same distribution, tested in tests/kernels/test_sampling_distribution.py against
  tests/kernels/sampling_reference.py;
- one host read per hop (one more when the first fanout is -1), each through ``_host_ints``: the read after hop
  k's draw carries hop k+1's edge and drawing-row counts, so hops 2.. draw into exact edge lists (hop 1 draws on a
  padded ``[seeds, fanout]`` grid). docs/SAMPLING.md has the details and the measurements.

Backends: ``sample_blocks`` on CPU tensors runs kernels/sampling_numba.py (the same semantics in compiled loops) where
numba imports, else the torch code below, which is also what runs on CUDA tensors. ``ACCESSBENCH_SAMPLER``
(``auto``, ``torch`` or ``numba``; default ``auto``) forces one; ``sampler_backend(device)`` says which runs.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from types import ModuleType

import torch

from .types import Block, SampledBatch

__all__ = ["BACKENDS", "numba_available", "sample_blocks", "sample_neighbors", "sampler_backend",
           "unique_first_occurrence", "validate_fanouts"]

#: Values of the ``ACCESSBENCH_SAMPLER`` environment variable (``auto``: numba on CPU tensors where it imports).
BACKENDS = ("auto", "torch", "numba")

#: Table entries below ``_POS`` are local ids; ``_POS + p`` marks "first seen at position p" during a merge.
_POS = 1 << 30
#: Table entry of a node that is in no batch.
_EMPTY = (1 << 31) - 1
#: Fanouts above this detect repeated draws by a per-row sort instead of all-pairs compares.
_PAIRWISE_MAX = 32
#: Floyd resolves its steps one by one (2 small ops per step) for fanouts up to ``_STEPWISE_MAX_K`` or draw grids
#: (rows x fanout) of at least ``_STEPWISE_MIN``; else all at once (fewer ops, more work: pays off for large k, few rows).
_STEPWISE_MAX_K = 16
_STEPWISE_MIN = 16384
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


# --------------------------------------------------------------------------------------------------- backends


@functools.cache
def _numba_backend() -> ModuleType | ImportError:
    """kernels/sampling_numba.py, or the ImportError that stopped it (numba missing or broken), imported once."""
    try:
        return importlib.import_module(".sampling_numba", __package__)
    except ImportError as err:
        return err


def numba_available() -> bool:
    """True when the numba backend imports (numba installed and compatible with this numpy)."""
    return not isinstance(_numba_backend(), ImportError)


def sampler_backend(device: torch.device | str) -> str:
    """``"numba"`` or ``"torch"``: the backend ``sample_blocks`` runs for tensors on ``device``, as
    ``ACCESSBENCH_SAMPLER`` and the installed packages decide. Raises ValueError for an unknown value, for ``numba``
    where it does not import, and for ``numba`` on a non-CPU device."""
    choice = os.environ.get("ACCESSBENCH_SAMPLER", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"ACCESSBENCH_SAMPLER={choice!r} is not a sampler backend; valid: {', '.join(BACKENDS)}")
    on_cpu = torch.device(device).type == "cpu"
    if choice == "numba":
        found = _numba_backend()
        if isinstance(found, ImportError):
            raise ValueError(f"ACCESSBENCH_SAMPLER=numba, but numba cannot be imported ({found}); install it with "
                             "pip install numba, or use ACCESSBENCH_SAMPLER=auto or torch") from found
        if not on_cpu:
            raise ValueError(f"ACCESSBENCH_SAMPLER=numba samples CPU tensors only, got tensors on {device}; "
                             "use ACCESSBENCH_SAMPLER=auto or torch")
        return "numba"
    return "numba" if choice == "auto" and on_cpu and numba_available() else "torch"


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


def _merge(table: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor | None, base: torch.Tensor | int, *,
           record: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give the ``ids`` (int64 ``[M]``, entries where ``valid`` is False ignored) not yet in ``table`` the local ids
    ``base, base+1, ...`` in first-occurrence order, and record them in ``table`` (``record=False``: the caller
    records them before the next merge, e.g. once per new id after compaction; until then ``table`` holds
    ``_POS + first position`` for the new ids).

    Returns ``(local, is_new, new_rank)``: int32 ``[M]`` local id of every entry (garbage where invalid), bool ``[M]``
    True at the first occurrence of a new id, int32 ``[M]`` inclusive count of new ids up to each entry.
    All in int32 (the table's type): half the bytes of int64 for the same ops.
    """
    m = ids.numel()
    if m >= _POS:
        raise ValueError(f"a hop of {m} sampled ids is more than the sampler's limit of {_POS - 1}")
    key = ids if valid is None else torch.where(valid, ids, table.numel() - 1)
    pos = torch.arange(_POS, _POS + m, dtype=torch.int32, device=ids.device)
    table.scatter_reduce_(0, key, pos, reduce="amin")
    seen = table.index_select(0, key)
    is_new = seen == pos
    if valid is not None:
        is_new &= valid
    new_rank = torch.cumsum(is_new, 0, dtype=torch.int32)
    first = (seen - _POS).clamp_(min=0)  # where this hop first saw the id (0 for ids of earlier hops)
    local = torch.where(seen < _POS, seen, new_rank.index_select(0, first).add_(base - 1))
    if record:
        table.scatter_(0, key, local)  # every occurrence of an id writes the same value
    return local, is_new, new_rank


def _compact(values: torch.Tensor, slot: torch.Tensor, size: int) -> torch.Tensor:
    """``out[:size]`` with ``out[slot[i]] = values[..., i]``; slots ``== size`` are dropped (no boolean masks, which
    would synchronise)."""
    out = values.new_empty((*values.shape[:-1], size + 1))
    return out.scatter_(-1, slot.expand_as(values), values)[..., :size]


# --------------------------------------------------------------------------------------------------- draws


def _floyd(deg: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct offsets in ``[0, deg)`` per row, uniform over k-subsets, column-major (int64 ``[k, n]``: draw i
    of row r at ``[i, r]``). Only rows with ``deg > k`` get meaningful values.

    Robert Floyd's algorithm: step i draws ``t_i`` uniform in ``[0, j_i]``, ``j_i = d - k + i``, and keeps ``t_i``
    unless it was already chosen, in which case it keeps ``j_i``. All draws come first (one ``rand``), so the
    result depends only on them; the resolution runs either step by step (two ops per step on ``[i, n]``, in
    float64, where these integers are exact) or for all steps at once (``_resolve_all_steps``, fewer ops for large
    k): the same result from the same draws.
    """
    n = deg.numel()
    dev = deg.device
    if k > _STEPWISE_MAX_K and n * k < _STEPWISE_MIN:  # many steps, few rows: fewer ops resolving all at once
        steps = torch.arange(k, device=dev).unsqueeze(1)  # [k, 1]
        j = (deg - k) + steps  # [k, n]
        u = torch.rand(k, n, generator=generator, device=dev, dtype=torch.float64)
        t = torch.minimum((u * (j + 1)).to(torch.int64), j)
        return _resolve_all_steps(t, j, deg - k, steps)
    # the same numbers in float64 (integers below 2**53 are exact), in place: fewer passes over [k, n]
    j = (deg - k).to(torch.float64) + torch.arange(k, device=dev, dtype=torch.float64).unsqueeze(1)
    t = torch.rand(k, n, generator=generator, device=dev, dtype=torch.float64)
    t.mul_(j + 1).floor_()
    torch.minimum(t, j, out=t)
    t_rows, j_rows = t.unbind(0), j.unbind(0)
    for i in range(1, k):  # in place: rows 0..i-1 of t already hold Floyd's choices
        torch.where((t[:i] == t_rows[i]).any(0), j_rows[i], t_rows[i], out=t_rows[i])
    return t.to(torch.int64)


def _resolve_all_steps(t: torch.Tensor, j: torch.Tensor, low: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Floyd's choices for all steps at once. ``t_i`` was already chosen iff it equals an earlier draw ``t_m``
    (``repeat_i``), or it equals ``j_m`` for the one ``m = t_i - (d - k) < i`` and step m collided: a pointer
    chain to strictly smaller steps, resolved by pointer doubling (log2 k gathers)."""
    k = t.shape[0]
    repeat = _repeats(t)
    m = t - low
    ptr = torch.where(~repeat & (m >= 0) & (m < steps), m, steps)
    for _ in range(max(k - 1, 1).bit_length()):
        ptr = ptr.gather(0, ptr)
    collided = repeat.gather(0, ptr)
    return torch.where(collided, j, t)


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


def _bounds(indptr: torch.Tensor, rows: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 ``[n]`` first edge and degree of ``rows`` (degree 0 where ``keep`` is False); one gather of ``2n``."""
    n = rows.numel()
    pair = torch.cat([rows, rows + 1]).to(indptr.device)
    bounds = indptr.index_select(0, pair).to(rows.device, torch.int64)
    start, deg = bounds[:n], bounds[n:] - bounds[:n]
    if keep is not None:
        deg = deg * keep
    return start, deg


def _counts(deg: torch.Tensor, fanout: int) -> torch.Tensor:
    """int64 ``[2]``: edges a hop with ``fanout`` takes from rows of degree ``deg``, and rows that must draw."""
    if fanout < 0:
        return torch.stack([deg.sum(), torch.zeros((), dtype=deg.dtype, device=deg.device)])
    return torch.stack([deg.clamp(max=fanout).sum(), (deg > fanout).sum()])


def _neighbours(indices: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """int64 global ids at edge positions ``pos`` (zeros when the graph has no edges: all positions are padding)."""
    if indices.numel() == 0:
        return torch.zeros(pos.numel(), dtype=torch.int64, device=pos.device)
    return indices.index_select(0, pos.to(indices.device)).to(pos.device, torch.int64)


def _draw_exact(indices: torch.Tensor, start: torch.Tensor, deg: torch.Tensor, fanout: int, total: int, nbig: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``min(deg, fanout)`` neighbours per row into an exact edge list of ``total`` edges (``nbig`` rows have
    ``deg > fanout``; both known on the host). Returns int64 ``[total]`` row index and neighbour id, grouped by row.

    Rows with ``deg <= fanout`` take every neighbour (no random numbers); only the ``nbig`` rows draw, compacted.
    """
    dev = deg.device
    n = deg.numel()
    take = deg if fanout < 0 else deg.clamp(max=fanout)
    first = torch.cumsum(take, 0) - take
    row = torch.repeat_interleave(torch.arange(n, device=dev), take, output_size=total)
    pos = (start - first).index_select(0, row) + torch.arange(total, device=dev)  # offsets 0..take-1
    if nbig:
        big = deg > fanout
        slot = torch.where(big, torch.cumsum(big, 0) - 1, nbig)
        b_deg, b_start, b_first = _compact(torch.stack([deg, start, first]), slot, nbig)
        off = _floyd(b_deg, fanout, generator)  # [k, nbig]
        steps = torch.arange(fanout, device=dev).unsqueeze(1)
        pos.scatter_(0, (b_first + steps).view(-1), off.add_(b_start).view(-1))  # [k, nbig] order, paired
    return row, _neighbours(indices, pos)


def _draw_grid(indices: torch.Tensor, start: torch.Tensor, deg: torch.Tensor, fanout: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``min(deg, fanout)`` neighbours per row on a padded ``[n, fanout]`` grid (no host read needed).

    Returns ``(nbr, valid, take)``: flat ``[n * fanout]`` neighbour id (int64) and whether the slot holds an edge
    (slot ``r * fanout + i`` belongs to row r), and int64 ``[n]`` edges per row.
    """
    take = deg.clamp(max=fanout)
    steps = torch.arange(fanout, device=deg.device)
    offsets = torch.where((deg > fanout).unsqueeze(1), _floyd(deg, fanout, generator).t(), steps)
    valid2 = steps < take.unsqueeze(1)
    pos = torch.where(valid2, start.unsqueeze(1) + offsets, 0).reshape(-1)
    return _neighbours(indices, pos), valid2.reshape(-1), take


def _edge_slots(take: torch.Tensor, valid: torch.Tensor, fanout: int, total: torch.Tensor) -> torch.Tensor:
    """Where each ``[n, fanout]`` grid slot goes in the compact edge list (``total`` for padding)."""
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
    start, deg = _bounds(indptr, nodes.to(torch.int64).reshape(-1), None)
    total, nbig = _host_ints(_counts(deg, fanout))
    return _draw_exact(indices, start, deg, fanout, total, nbig, generator)


def sample_blocks(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    seeds: torch.Tensor,
    fanouts: Sequence[int],
    generator: torch.Generator,
) -> SampledBatch:
    """Multi-hop sampling from ``seeds``; returns blocks in local ids and the unique node ids (seeds first).

    Duplicate seeds are merged (the batch's seeds are its unique seeds, first occurrence order). CPU tensors go to
    the numba backend where ``sampler_backend`` says so. Torch backend: one host read per hop (one more when the
    first fanout is -1): the read after hop h's draw also carries hop h+1's edge count and drawing-row count,
    computed on the not yet compacted frontier, so hops 2.. draw into exact edge lists.
    """
    fanouts = validate_fanouts(fanouts)
    dev = seeds.device
    seeds = seeds.to(torch.int64).reshape(-1)
    # the numba backend needs every tensor on the CPU: a CUDA tensor among them decides
    placed = next((t.device for t in (seeds, indptr, indices) if t.device.type != "cpu"), dev)
    if sampler_backend(placed) == "numba":
        backend = _numba_backend()
        assert not isinstance(backend, ImportError)
        with _TABLES.borrow(indptr.numel() - 1, dev) as table:
            return backend.sample_blocks(indptr, indices, seeds, fanouts, generator, table=table)
    zero = torch.zeros(1, dtype=torch.int64, device=dev)
    with _TABLES.borrow(indptr.numel() - 1, dev) as table:
        seed_local, seed_new, seed_rank = _merge(table, seeds, None, 0)
        num_seeds_t = seed_rank[-1:] if seeds.numel() else zero
        # hop 1 draws for the first occurrence of each seed: padded rows, local ids seed_local
        start, deg = _bounds(indptr, seeds, seed_new)
        nodes: torch.Tensor | None = None
        blocks: list[Block] = []
        num_dst = total = nbig = 0
        for hop, fanout in enumerate(fanouts):
            last = hop == len(fanouts) - 1
            valid = None
            if hop == 0 and fanout >= 0:
                nbr, valid, take = _draw_grid(indices, start, deg, fanout, generator)
                row = None
            else:
                if hop == 0:  # fanout -1: the exact size is needed before the draw
                    total, nbig = _host_ints(_counts(deg, fanout))
                row, nbr = _draw_exact(indices, start, deg, fanout, total, nbig, generator)
            base = num_seeds_t.reshape(()) if hop == 0 else num_dst
            src, is_new, new_rank = _merge(table, nbr, valid, base, record=False)
            new_t = new_rank[-1:] if nbr.numel() else zero
            reads = [num_seeds_t] if hop == 0 else []
            if valid is not None:
                total_t = take.sum().reshape(1)
                reads.append(total_t)
            reads.append(new_t)
            if not last:  # the next frontier, uncompacted: this hop's rows, then the new ids where is_new
                c_start, c_deg = _bounds(indptr, nbr, is_new)
                reads.append(_counts(torch.cat([deg, c_deg]), fanouts[hop + 1]))
            got = _host_ints(torch.cat(reads))
            if hop == 0:
                num_dst = got.pop(0)
                nodes = seeds
                if seeds.numel() != num_dst:
                    kept = _compact(torch.stack([seeds, start, deg]),
                                    torch.where(seed_new, seed_rank.to(torch.int64) - 1, num_dst), num_dst)
                    nodes, start, deg = kept[0], kept[1], kept[2]
            assert nodes is not None
            edge_index = torch.empty((2, src.numel()), dtype=torch.int64, device=dev)
            edge_index[0] = src
            if row is None:  # hop 1's grid: slot r * fanout + i belongs to seed r
                edge_index[1].view(-1, fanout).copy_(seed_local.unsqueeze(1))
            else:
                edge_index[1] = seed_local.index_select(0, row) if hop == 0 else row
            if valid is not None:
                edge_count = got.pop(0)
                edge_index = _compact(edge_index, _edge_slots(take, valid, fanout, total_t), edge_count)
            num_new = got.pop(0)
            blocks.append(Block(num_src=num_dst + num_new, num_dst=num_dst, edge_index=edge_index))
            slot = torch.where(is_new, new_rank.to(torch.int64) - 1, num_new)
            if last:
                nodes = torch.cat([nodes, _compact(nbr, slot, num_new)])
            else:
                new = _compact(torch.stack([nbr, c_start, c_deg]), slot, num_new)
                # record the new ids' local ids: one write per new id, not one per sampled edge
                table.scatter_(0, new[0], torch.arange(num_dst, num_dst + num_new, dtype=torch.int32, device=dev))
                nodes, start, deg = (torch.cat([a, b]) for a, b in zip((nodes, start, deg), new))
                total, nbig = got
            num_dst += num_new
        assert nodes is not None
        table.index_fill_(0, nodes, _EMPTY)
        table[-1] = _EMPTY
    return SampledBatch(seeds=nodes[:blocks[0].num_dst], node_ids=nodes, blocks=tuple(blocks))


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
