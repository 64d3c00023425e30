"""Sampler backends: which one runs (ACCESSBENCH_SAMPLER, numba missing), and the exact structure of the blocks
each builds: real CSR edges, no repeated edge per destination, min(deg, fanout) per destination, seeded draws."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import pytest
import torch

from accessbench.kernels import sampling
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.types import SampledBatch
from tests.conftest import make_graph
from tests.kernels.sampling_backends import BACKENDS, use_backend

CPU = torch.device("cpu")


@pytest.fixture
def fresh_import() -> Iterator[None]:
    """Forget the cached numba import before and after the test (it may hide numba)."""
    sampling._numba_backend.cache_clear()
    yield
    sampling._numba_backend.cache_clear()


def _distinct_graph(num_nodes: int, max_degree: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR with distinct neighbours per node (no multi-edges), degrees 0..max_degree; node 1 has degree 0."""
    g = torch.Generator().manual_seed(seed)
    deg = torch.randint(0, max_degree + 1, (num_nodes,), generator=g)
    deg[1] = 0
    rows = [torch.randperm(num_nodes, generator=g)[:int(d)] for d in deg]
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(deg, 0)
    return indptr, torch.cat(rows).to(torch.int32)


def _check_exact(batch: SampledBatch, indptr: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor,
                 fanouts: list[int]) -> None:
    """Every edge is a CSR edge, used at most as often as the CSR lists it; min(deg, fanout) edges per destination,
    grouped by destination; frontiers are previous nodes then new sources in first-occurrence order."""
    nodes = batch.node_ids
    assert nodes.dtype == torch.int64 and nodes.unique().numel() == nodes.numel()
    uniq = list(dict.fromkeys(seeds.tolist()))
    assert batch.seeds.tolist() == uniq and nodes[:len(uniq)].tolist() == uniq
    assert batch.blocks[0].num_dst == len(uniq) and batch.blocks[-1].num_src == nodes.numel()
    deg = indptr[1:] - indptr[:-1]
    for hop, (block, fanout) in enumerate(zip(batch.blocks, fanouts)):
        if hop:
            assert block.num_dst == batch.blocks[hop - 1].num_src
        ei = block.edge_index
        assert ei.dtype == torch.int64 and ei.shape == (2, block.num_edges)
        src, dst = ei
        want = deg[nodes[:block.num_dst]]
        assert torch.equal(torch.bincount(dst, minlength=block.num_dst), want if fanout < 0 else want.clamp(max=fanout))
        assert bool((dst[1:] >= dst[:-1]).all())
        assert bool((src < block.num_src).all()) and bool((src >= 0).all())
        seen = set(nodes[:block.num_dst].tolist())
        order = [s for s in nodes[src].tolist() if not (s in seen or seen.add(s))]
        assert nodes[block.num_dst:block.num_src].tolist() == order
        for d in range(block.num_dst):
            v = int(nodes[d])
            real = Counter(indices[indptr[v]:indptr[v + 1]].tolist())
            picked = Counter(nodes[src[dst == d]].tolist())
            assert all(real[u] >= c for u, c in picked.items())  # real edges, each at most once


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fanouts", [[3], [4, 3], [10, 5], [15, 10, 5], [-1], [2, -1], [-1, 3], [60, 2]])
def test_blocks_are_exact(monkeypatch: pytest.MonkeyPatch, backend: str, fanouts: list[int]) -> None:
    use_backend(monkeypatch, backend)
    indptr, indices = _distinct_graph(700, 80, seed=len(fanouts))
    seeds = torch.tensor([5, 1, 9, 5, 600, 1, 0, 42, 9])  # duplicates and node 1 of degree 0
    batch = sample_blocks(indptr, indices, seeds, fanouts, torch.Generator().manual_seed(2))
    _check_exact(batch, indptr, indices, seeds, fanouts)
    for block in batch.blocks:  # no multi-edges in this graph: no (src, dst) pair twice
        assert torch.unique(block.edge_index, dim=1).shape[1] == block.num_edges


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_edges_and_int64_indices(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    graph = make_graph(num_nodes=400, max_degree=30, seed=8)  # random neighbours: repeats within a row
    seeds = torch.arange(0, 400, 5)
    for indices in (graph.indices, graph.indices.to(torch.int64)):
        batch = sample_blocks(graph.indptr, indices, seeds, [6, 4], torch.Generator().manual_seed(1))
        _check_exact(batch, graph.indptr, indices, seeds, [6, 4])


@pytest.mark.parametrize("backend", BACKENDS)
def test_degree_zero_empty_and_all_duplicate_seeds(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    indptr, indices = _distinct_graph(50, 10, seed=3)
    lone = sample_blocks(indptr, indices, torch.tensor([1, 1, 1]), [5, -1], torch.Generator())
    assert lone.seeds.tolist() == [1] and lone.node_ids.tolist() == [1] and lone.num_edges == 0
    assert [(b.num_dst, b.num_src) for b in lone.blocks] == [(1, 1), (1, 1)]
    empty = sample_blocks(indptr, indices, torch.empty(0, dtype=torch.int64), [3, 2], torch.Generator())
    assert empty.seeds.numel() == 0 and empty.node_ids.numel() == 0 and empty.num_edges == 0
    assert all(b.edge_index.shape == (2, 0) and b.edge_index.dtype == torch.int64 for b in empty.blocks)


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_seed_raises_and_leaves_the_table_clean(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    indptr, indices = _distinct_graph(60, 8, seed=4)
    with pytest.raises((IndexError, RuntimeError)):
        sample_blocks(indptr, indices, torch.tensor([3, 60]), [2], torch.Generator())
    for slots in sampling._TABLES.free.values():
        for table, _ in slots:
            assert bool((table == sampling._EMPTY).all())


def test_numba_refuses_an_indptr_past_the_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, "numba")
    indptr, indices = _distinct_graph(40, 6, seed=2)
    with pytest.raises(ValueError, match="does not fit indices"):
        sample_blocks(indptr, indices[:-1], torch.tensor([0, 3]), [2], torch.Generator())


def test_backends_agree_exactly_where_nothing_is_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """All neighbours (fanout -1, or fanouts at least every degree): both backends build the very same blocks."""
    pytest.importorskip("numba")
    indptr, indices = _distinct_graph(300, 12, seed=6)
    seeds = torch.tensor([7, 3, 7, 250, 1, 99])
    for fanouts in ([-1, -1], [12, 20, -1]):
        got = {}
        for backend in BACKENDS:
            use_backend(monkeypatch, backend)
            got[backend] = sample_blocks(indptr, indices, seeds, fanouts, torch.Generator().manual_seed(0))
        a, b = got["torch"], got["numba"]
        assert torch.equal(a.seeds, b.seeds) and torch.equal(a.node_ids, b.node_ids)
        for x, y in zip(a.blocks, b.blocks):
            assert (x.num_src, x.num_dst) == (y.num_src, y.num_dst) and torch.equal(x.edge_index, y.edge_index)


def test_numba_draws_are_seeded_and_independent_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    use_backend(monkeypatch, "numba")
    import numba

    from accessbench.kernels import sampling_numba

    monkeypatch.setattr(sampling_numba, "PARALLEL_MIN_EDGES", 0)  # this small batch runs on every thread too
    indptr, indices = _distinct_graph(3000, 60, seed=7)
    seeds = torch.randint(0, 3000, (700,), generator=torch.Generator().manual_seed(0))
    saved = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 1):
            torch.set_num_threads(threads)
            runs.append(sample_blocks(indptr, indices, seeds, [10, 5], torch.Generator().manual_seed(9)))
            assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
    finally:
        torch.set_num_threads(saved)
    for other in runs[1:]:
        assert torch.equal(runs[0].node_ids, other.node_ids)
        for x, y in zip(runs[0].blocks, other.blocks):
            assert torch.equal(x.edge_index, y.edge_index)
    gen = torch.Generator().manual_seed(9)
    first, second = (sample_blocks(indptr, indices, seeds, [10, 5], gen) for _ in range(2))
    assert torch.equal(first.node_ids, runs[0].node_ids)
    assert not torch.equal(first.blocks[0].edge_index, second.blocks[0].edge_index)  # the generator moved on


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", "torch")
    assert sampling.sampler_backend(CPU) == sampling.sampler_backend("cuda") == "torch"
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", "auto")
    assert sampling.sampler_backend("cuda:0") == "torch"
    assert sampling.sampler_backend(CPU) == ("numba" if sampling.numba_available() else "torch")
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", "fastest")
    with pytest.raises(ValueError, match="valid: auto, torch, numba"):
        sampling.sampler_backend(CPU)
    if sampling.numba_available():
        monkeypatch.setenv("ACCESSBENCH_SAMPLER", "numba")
        with pytest.raises(ValueError, match="CPU tensors only"):
            sampling.sampler_backend("cuda")


def test_without_numba_the_torch_backend_runs(monkeypatch: pytest.MonkeyPatch, fresh_import: None) -> None:
    """numba missing (its import fails): auto runs the torch code; asking for numba says what to install."""
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    monkeypatch.delitem(sys.modules, "accessbench.kernels.sampling_numba", raising=False)
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", "auto")
    assert not sampling.numba_available() and sampling.sampler_backend(CPU) == "torch"
    indptr, indices = _distinct_graph(200, 15, seed=5)
    seeds = torch.tensor([4, 8, 4, 1])
    batch = sample_blocks(indptr, indices, seeds, [5, 3], torch.Generator().manual_seed(0))
    _check_exact(batch, indptr, indices, seeds, [5, 3])
    monkeypatch.setenv("ACCESSBENCH_SAMPLER", "numba")
    with pytest.raises(ValueError, match=r"numba cannot be imported .*pip install numba") as info:
        sample_blocks(indptr, indices, seeds, [5, 3], torch.Generator())
    assert isinstance(info.value.__cause__, ImportError)


def test_small_batches_sample_on_one_numba_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numba")
    import numba

    from accessbench.kernels.sampling_numba import PARALLEL_MIN_EDGES, sampler_threads

    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert sampler_threads(1024, [10, 5], 15.0) == 1  # default: ~61k expected edges
        big = min(2, numba.config.NUMBA_NUM_THREADS)
        assert sampler_threads(1024, [15, 10, 5], 15.0) == big  # papers100m-like: ~937k
        assert sampler_threads(1024, [-1], PARALLEL_MIN_EDGES / 1024) == big  # -1 counts as the average degree
        assert sampler_threads(10, [-1], 30.0) == 1
        torch.set_num_threads(1)
        assert sampler_threads(1024, [15, 10, 5], 15.0) == 1  # never more than torch's intra-op threads
    finally:
        torch.set_num_threads(saved)
