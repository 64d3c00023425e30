"""Sampler properties: real neighbours, at most fanout, no repeats where the degree allows, seeded (block tests run
under both backends; the host-read counts are the torch backend's)."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels.sampling import sample_blocks, sample_neighbors, unique_first_occurrence, validate_fanouts
from tests.conftest import make_graph
from tests.kernels.sampling_backends import BACKENDS, use_backend


def _neighbours(graph, v: int) -> list[int]:
    return graph.indices[graph.indptr[v]:graph.indptr[v + 1]].tolist()


@pytest.mark.parametrize("fanout", [1, 3, 10, 40, -1])
def test_sampled_neighbours_are_real_and_bounded(fanout: int) -> None:
    graph = make_graph(num_nodes=400, max_degree=50, seed=fanout + 2)
    nodes = torch.arange(0, 400, 3)
    pos, nbr = sample_neighbors(graph.indptr, graph.indices, nodes, fanout, torch.Generator().manual_seed(0))
    for i, v in enumerate(nodes.tolist()):
        picked = nbr[pos == i].tolist()
        real = _neighbours(graph, v)
        deg = len(real)
        want = deg if fanout < 0 else min(deg, fanout)
        assert len(picked) == want
        # without replacement: each edge at most once, so each neighbour at most as often as it is in the list
        for u in set(picked):
            assert picked.count(u) <= real.count(u)


def test_nodes_with_small_degree_keep_all_neighbours() -> None:
    graph = make_graph(num_nodes=200, max_degree=5, seed=9)
    nodes = torch.arange(200)
    pos, nbr = sample_neighbors(graph.indptr, graph.indices, nodes, 5, torch.Generator().manual_seed(0))
    for i in range(200):
        assert sorted(nbr[pos == i].tolist()) == sorted(_neighbours(graph, i))


def test_sampling_is_uniform() -> None:
    # one node with 6 distinct neighbours, fanout 2: each neighbour chosen with probability 1/3
    indptr = torch.tensor([0, 6] + [6] * 6, dtype=torch.int64)
    indices = torch.arange(1, 7, dtype=torch.int64)
    nodes = torch.zeros(30000, dtype=torch.int64)
    _, nbr = sample_neighbors(indptr, indices, nodes, 2, torch.Generator().manual_seed(1))
    freq = torch.bincount(nbr, minlength=7)[1:].double() / 30000
    assert torch.allclose(freq, torch.full((6,), 1 / 3, dtype=torch.float64), atol=0.015)
    pairs = nbr.view(-1, 2)
    assert bool((pairs[:, 0] != pairs[:, 1]).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_blocks_are_consistent_and_seeded(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    graph = make_graph(num_nodes=500, max_degree=25, seed=4)
    seeds = torch.tensor([5, 9, 5, 100, 7])
    b1 = sample_blocks(graph.indptr, graph.indices, seeds, [4, 3], torch.Generator().manual_seed(7))
    b2 = sample_blocks(graph.indptr, graph.indices, seeds, [4, 3], torch.Generator().manual_seed(7))
    b3 = sample_blocks(graph.indptr, graph.indices, seeds, [4, 3], torch.Generator().manual_seed(8))
    assert torch.equal(b1.node_ids, b2.node_ids)
    assert not torch.equal(b1.node_ids, b3.node_ids) or b1.num_edges == 0
    assert b1.seeds.tolist() == [5, 9, 100, 7]  # unique, first-occurrence order
    assert torch.equal(b1.node_ids[:4], b1.seeds)
    assert b1.node_ids.unique().numel() == b1.node_ids.numel()
    nodes = b1.node_ids
    prev_dst = 4
    for block in b1.blocks:
        assert block.num_dst == prev_dst
        src, dst = block.edge_index
        assert int(src.max()) < block.num_src and int(dst.max()) < block.num_dst
        for s, d in zip(src.tolist(), dst.tolist()):
            assert int(nodes[s]) in _neighbours(graph, int(nodes[d]))
        prev_dst = block.num_src


def test_unique_first_occurrence() -> None:
    ids = torch.tensor([4, 2, 4, 9, 2, 1])
    uniq, inv = unique_first_occurrence(ids)
    assert uniq.tolist() == [4, 2, 9, 1]
    assert torch.equal(uniq[inv], ids)


@pytest.mark.parametrize("bad", [[], [0], [3, -2], [5, 0]])
def test_bad_fanouts_rejected(bad: list[int]) -> None:
    with pytest.raises(ValueError):
        validate_fanouts(bad)


@pytest.mark.parametrize("fanouts", [[10, 5], [15, 10, 5], [3]])
def test_one_host_sync_per_hop_without_a_gpu(monkeypatch: pytest.MonkeyPatch, fanouts: list[int]) -> None:
    """Every device->host read goes through ``_host_ints``: count them, and forbid the implicit ones."""
    from accessbench.kernels import sampling

    use_backend(monkeypatch, "torch")
    graph = make_graph(num_nodes=2000, max_degree=40, seed=3)
    seeds = torch.randint(0, 2000, (300,), generator=torch.Generator().manual_seed(1))
    orig_tolist = torch.Tensor.tolist
    reads: list[int] = []

    def counting_read(t: torch.Tensor) -> list[int]:
        reads.append(t.numel())
        return orig_tolist(t.cpu())

    forbidden: list[str] = []

    def refuse(name: str, orig):
        def hook(*args, **kwargs):
            forbidden.append(name)
            return orig(*args, **kwargs)
        return hook

    monkeypatch.setattr(sampling, "_host_ints", counting_read)
    monkeypatch.setattr(torch, "nonzero", refuse("nonzero", torch.nonzero))
    monkeypatch.setattr(torch, "unique", refuse("unique", torch.unique))
    for name in ("item", "tolist", "__bool__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse(name, getattr(torch.Tensor, name)))
    batch = sample_blocks(graph.indptr, graph.indices, seeds, fanouts, torch.Generator().manual_seed(0))
    monkeypatch.undo()
    assert forbidden == []
    assert len(reads) <= len(fanouts)
    assert batch.num_edges > 0


@pytest.mark.parametrize("fanouts,max_reads", [([5, -1, 3], 3), ([-1, 2], 3), ([4, 4, -1], 3)])
def test_all_neighbour_hops_cost_a_read_only_first(monkeypatch: pytest.MonkeyPatch, fanouts: list[int],
                                                     max_reads: int) -> None:
    """A fanout of -1 after hop 1 rides on the previous hop's read; only a first hop of -1 adds one."""
    from accessbench.kernels import sampling

    use_backend(monkeypatch, "torch")
    graph = make_graph(num_nodes=500, max_degree=12, seed=5)
    reads: list[int] = []
    orig = sampling._host_ints
    monkeypatch.setattr(sampling, "_host_ints", lambda t: reads.append(t.numel()) or orig(t))
    batch = sample_blocks(graph.indptr, graph.indices, torch.tensor([3, 8, 3, 77]), fanouts,
                          torch.Generator().manual_seed(0))
    assert len(reads) <= max_reads
    deg = graph.indptr[1:] - graph.indptr[:-1]
    for block, fanout in zip(batch.blocks, fanouts):
        want = deg[batch.node_ids[:block.num_dst]]
        want = want if fanout < 0 else want.clamp(max=fanout)
        assert torch.equal(torch.bincount(block.edge_index[1], minlength=block.num_dst), want)


def test_sample_neighbors_reads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from accessbench.kernels import sampling

    graph = make_graph(num_nodes=300, max_degree=30, seed=6)
    reads: list[int] = []
    orig = sampling._host_ints
    monkeypatch.setattr(sampling, "_host_ints", lambda t: reads.append(t.numel()) or orig(t))
    for fanout in (4, -1):
        reads.clear()
        sample_neighbors(graph.indptr, graph.indices, torch.arange(0, 300, 2), fanout, torch.Generator())
        assert len(reads) == 1
