"""Multi-hop neighbour sampling in numba-compiled loops, for CPU tensors (numba is a dependency; where it is absent,
the torch sampler in kernels/sampling.py runs).

Same semantics as kernels/sampling.py (its module docstring): unique seeds first, ``min(deg, fanout)`` neighbours per
frontier node without replacement (Floyd's algorithm), all of them for a fanout of -1, the next frontier in
first-occurrence order, blocks of int64 ``[2, E]`` (src, dst) local ids grouped by dst in frontier order.

Imports numba at module level: import this module lazily (``sampling.numba_available()`` first). docs/SAMPLING.md
("The numba backend") has the algorithm, the random numbers and the threads.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch
from numba import njit, prange

from .types import Block, SampledBatch

__all__ = ["sample_blocks"]

#: Table entry of a node that is in no batch (the torch backend's ``_EMPTY``: the two share the table pool).
_EMPTY = (1 << 31) - 1
#: Rows per parallel work item (one random stream per row, so the chunking does not change the sample).
_CHUNK = 128
#: Fanouts up to this check Floyd's repeats against the earlier picks; larger ones use a small hash set.
_LINEAR_MAX_K = 48

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(32)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
#: The workqueue threading layer (numba's fallback without TBB or OpenMP) aborts on concurrent launches.
_LAUNCH_LOCK = threading.Lock()


@njit(cache=True, nogil=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    """SplitMix64's finaliser: a bijection of uint64 with full avalanche."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True, inline="always")
def _below(state, bound):  # pragma: no cover - compiled
    """Next SplitMix64 state and an integer uniform in ``[0, bound)`` (53-bit float scaling, as the torch path)."""
    state = state + _GOLDEN
    u = np.float64(_mix(state) >> _S11) * _TO_UNIT
    t = np.int64(u * np.float64(bound))
    return state, min(t, bound - 1)


@njit(cache=True, nogil=True)
def _floyd_row(out, base, deg, k, state, scratch):  # pragma: no cover - compiled
    """Write k distinct offsets in ``[0, deg)`` to ``out[base:base + k]`` (every k-subset equally likely).

    Floyd: step i draws t uniform in ``[0, j]``, ``j = deg - k + i``, keeps t unless already chosen, else j (never
    chosen before: earlier steps draw below j). Repeats are found by a scan of the earlier picks for small k, else in
    ``scratch`` (an open-addressing set of offsets, all -1 on entry and on return).
    """
    if k <= _LINEAR_MAX_K:
        for i in range(k):
            j = deg - k + i
            state, t = _below(state, j + 1)
            for m in range(base, base + i):
                if out[m] == t:
                    t = j
                    break
            out[base + i] = t
        return
    mask = scratch.size - 1
    for i in range(k):
        j = deg - k + i
        state, t = _below(state, j + 1)
        h = np.int64(_mix(np.uint64(t)) & np.uint64(mask))
        while scratch[h] != -1 and scratch[h] != t:
            h = (h + 1) & mask
        if scratch[h] == t:  # already chosen: take j, which is not in the set
            h = np.int64(_mix(np.uint64(j)) & np.uint64(mask))
            while scratch[h] != -1:
                h = (h + 1) & mask
            t = j
        scratch[h] = t
        out[base + i] = t
    for i in range(k):  # clear only what was set
        h = np.int64(_mix(np.uint64(out[base + i])) & np.uint64(mask))
        while scratch[h] != out[base + i]:
            h = (h + 1) & mask
        scratch[h] = -1


@njit(cache=True, nogil=True, parallel=True)
def _draw_hop(indices, starts, degs, first, nbr, dst, fanout, key, hop):  # pragma: no cover - compiled
    """Neighbour ids of the frontier rows (first edge ``starts[r]``, degree ``degs[r]``) into ``nbr`` (row r at
    ``first[r]:first[r + 1]``) and each edge's row into ``dst``. Rows run in parallel chunks; row r of hop h draws
    from its own stream ``(key, h, r)``. Edge positions first, then one tight gather per chunk (many loads in flight).
    """
    n = starts.size
    chunks = (n + _CHUNK - 1) // _CHUNK
    size = 1
    while size < 4 * fanout:
        size *= 2
    for c in prange(chunks):
        scratch = np.full(size if fanout > _LINEAR_MAX_K else 1, -1, dtype=np.int64)
        lo, hi = c * _CHUNK, min(n, (c + 1) * _CHUNK)
        for r in range(lo, hi):
            start, deg, base = starts[r], degs[r], first[r]
            take = first[r + 1] - base
            if take < deg:
                state = _mix(key ^ _mix((np.uint64(hop) << _S32) | np.uint64(r)))
                _floyd_row(nbr, base, deg, take, state, scratch)
                for e in range(base, base + take):
                    nbr[e] += start
            else:
                for i in range(take):
                    nbr[base + i] = start + i
            for e in range(base, base + take):
                dst[e] = r
        for e in range(first[lo], first[hi]):
            nbr[e] = indices[nbr[e]]


@njit(cache=True, nogil=True, parallel=True)
def _lookup(table, ids, out):  # pragma: no cover - compiled
    """``out[e] = table[ids[e]]`` in parallel (a tight gather: many loads in flight)."""
    for e in prange(ids.size):
        out[e] = table[ids[e]]


@njit(cache=True, nogil=True, parallel=True)
def _bounds(indptr, nodes, starts, degs, lo):  # pragma: no cover - compiled
    """First edge and degree of ``nodes[r]`` into ``starts[r]``, ``degs[r]`` for r from ``lo`` on, in parallel."""
    for r in prange(lo, starts.size):
        starts[r] = indptr[nodes[r]]
        degs[r] = indptr[nodes[r] + 1] - starts[r]


@njit(cache=True, nogil=True, parallel=True)
def _reset(table, nodes):  # pragma: no cover - compiled
    """``table[nodes] = _EMPTY`` in parallel (ids are unique: no two threads write one entry)."""
    for i in prange(nodes.size):
        table[nodes[i]] = _EMPTY


@njit(cache=True, nogil=True)
def _sample(indptr, indices, seeds, fanouts, table, key):  # pragma: no cover - compiled
    """All hops. Returns ``(nodes, num_dst, edges)``: int64 unique node ids (seeds first), int64 ``[hops + 1]``
    frontier sizes, and one int64 ``[2, E]`` (src, dst) local-id array per hop. ``table`` (int32 ``[N + 1]``, all
    ``_EMPTY``) maps node -> local id while sampling and is reset on return (only the touched entries)."""
    num_nodes = indptr.size - 1
    for s in seeds:
        if s < 0 or s >= num_nodes:
            raise IndexError("a seed id is outside [0, num_nodes)")
    nodes = np.empty(max(seeds.size, 16), dtype=np.int64)
    count = 0
    for s in seeds:
        if table[s] == _EMPTY:
            table[s] = count
            nodes[count] = s
            count += 1
    num_dst = np.empty(fanouts.size + 1, dtype=np.int64)
    num_dst[0] = count
    starts = np.empty(count, dtype=np.int64)
    degs = np.empty(count, dtype=np.int64)
    _bounds(indptr, nodes, starts, degs, 0)
    edges = []
    for hop in range(fanouts.size):
        fanout = fanouts[hop]
        n_dst = count
        first = np.empty(n_dst + 1, dtype=np.int64)
        first[0] = 0
        for r in range(n_dst):
            deg = degs[r]
            first[r + 1] = first[r] + (deg if fanout < 0 or deg < fanout else fanout)
        total = first[n_dst]
        edge_index = np.empty((2, total), dtype=np.int64)
        src = edge_index[0]
        _draw_hop(indices, starts, degs, first, src, edge_index[1], fanout, key, hop)
        seen = np.empty(total, dtype=np.int32)
        _lookup(table, src, seen)
        if count + total > nodes.size:
            grown = np.empty(max(2 * nodes.size, count + total), dtype=np.int64)
            grown[:count] = nodes[:count]
            nodes = grown
        for e in range(total):  # relabel in first-occurrence order, in place
            local = seen[e]
            if local == _EMPTY:  # not in an earlier hop; maybe earlier in this one
                v = src[e]
                if v < 0 or v >= num_nodes:
                    raise IndexError("a neighbour id in indices is outside [0, num_nodes)")
                local = table[v]
                if local == _EMPTY:
                    local = count
                    table[v] = count
                    nodes[count] = v
                    count += 1
            src[e] = local
        num_dst[hop + 1] = count
        edges.append(edge_index)
        if hop + 1 < fanouts.size:  # the new rows' first edge and degree, for the next hop
            grown_s = np.empty(count, dtype=np.int64)
            grown_d = np.empty(count, dtype=np.int64)
            grown_s[:n_dst] = starts
            grown_d[:n_dst] = degs
            _bounds(indptr, nodes, grown_s, grown_d, n_dst)
            starts, degs = grown_s, grown_d
    nodes = nodes[:count].copy()
    _reset(table, nodes)
    return nodes, num_dst, edges


#: Batches expected to sample fewer edges than this run on one numba thread. Measured on the 2-core VM: `default`
#: ([10, 5] x 1024 seeds, ~61k edges by this estimate, ~34k drawn) gained 1.06x from a second thread but, inside the
#: runner, a whole process then ran its sample phase at 1.95 ms instead of 1.2 ms (and compute ~12% slower) in 6 of
#: 40 processes: numba's and torch's OpenMP pools spinning against each other. `papers100m-like` ([15, 10, 5],
#: ~937k by this estimate, ~277k drawn) gains 1.57x and keeps both threads.
PARALLEL_MIN_EDGES = 200_000


def sampler_threads(num_seeds: int, fanouts: list[int], avg_degree: float) -> int:
    """numba threads for one batch: 1 below ``PARALLEL_MIN_EDGES`` expected edges (``num_seeds`` x the product of
    the fanouts so far, summed over hops; -1 counts as ``avg_degree``), else torch's intra-op thread count (capped
    by ``NUMBA_NUM_THREADS``)."""
    expected, width = 0.0, float(num_seeds)
    for f in fanouts:
        width *= avg_degree if f < 0 else f
        expected += width
    if expected < PARALLEL_MIN_EDGES:
        return 1
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def sample_blocks(indptr: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor, fanouts: list[int],
                  generator: torch.Generator, *, table: torch.Tensor) -> SampledBatch:
    """``sampling.sample_blocks`` for CPU tensors (``fanouts`` already validated); ``table`` is an int32
    ``[num_nodes + 1]`` CPU node table, all ``_EMPTY``, left so on return. Random numbers: one int64 key drawn
    from ``generator``; runs on ``sampler_threads(...)`` threads (one for small batches)."""
    if indptr.numel() == 0 or int(indptr[-1]) > indices.numel():  # the compiled loops do not check bounds
        raise ValueError(f"indptr (last entry {int(indptr[-1]) if indptr.numel() else None}) does not fit "
                         f"indices of {indices.numel()} edges")
    key = int(torch.randint(0, 1 << 62, (1,), generator=generator))
    numba.set_num_threads(sampler_threads(seeds.numel(), fanouts, indices.numel() / max(1, indptr.numel() - 1)))
    args = (indptr.contiguous().numpy(), indices.contiguous().numpy(), seeds.contiguous().numpy(),
            np.asarray(fanouts, dtype=np.int64), table.numpy(), np.uint64(key))
    if numba.threading_layer() == "workqueue":
        with _LAUNCH_LOCK:
            nodes, num_dst, edges = _sample(*args)
    else:
        nodes, num_dst, edges = _sample(*args)
    counts = num_dst.tolist()
    blocks = tuple(Block(num_src=counts[h + 1], num_dst=counts[h], edge_index=torch.from_numpy(e))
                   for h, e in enumerate(edges))
    node_ids = torch.from_numpy(nodes)
    return SampledBatch(seeds=node_ids[:counts[0]], node_ids=node_ids, blocks=blocks)
