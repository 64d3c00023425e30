"""The new sampler against the pre-issue-12 reference: same structure semantics, same (uniform) distribution.

Chi-square statistics with fixed seeds (deterministic, not flaky); thresholds are the 0.999 quantiles. The draws come
from ``sample_neighbors`` (torch) and from ``sample_blocks`` under each backend (tests/kernels/sampling_backends.py).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from accessbench.kernels import sampling
from accessbench.kernels.sampling import sample_blocks, sample_neighbors
from tests.conftest import make_graph
from tests.kernels import sampling_reference as ref
from tests.kernels.sampling_backends import BACKENDS, use_backend

# chi-square 0.999 quantiles by degrees of freedom (scipy.stats.chi2.ppf(0.999, df))
_CHI2_999 = {49: 85.35, 199: 267.54, 9: 27.88, 34: 65.25, 55: 93.17}
#: Where the draws come from: ``sample_neighbors`` (torch), or ``sample_blocks`` under a backend.
SAMPLERS = ["sample_neighbors", *BACKENDS]


def _chi2(counts: torch.Tensor) -> float:
    expected = counts.sum().item() / counts.numel()
    return float(((counts.double() - expected) ** 2 / expected).sum())


def _star(deg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Node 0 with ``deg`` distinct neighbours 1..deg."""
    indptr = torch.tensor([0] + [deg] * (deg + 1), dtype=torch.int64)
    return indptr, torch.arange(1, deg + 1, dtype=torch.int64)


def _draws(monkeypatch: pytest.MonkeyPatch, sampler: str, deg: int, k: int, rows: int, seed: int) -> torch.Tensor:
    """int64 ``[rows, k]``: ``rows`` independent draws of k of the neighbours 1..deg of one node.

    ``sample_neighbors`` draws for node 0 of ``_star(deg)`` ``rows`` times; ``sample_blocks`` (which merges repeated
    seeds) draws once for each of ``rows`` hubs that share the neighbours ``rows .. rows + deg - 1``.
    """
    gen = torch.Generator().manual_seed(seed)
    if sampler == "sample_neighbors":
        indptr, indices = _star(deg)
        return sample_neighbors(indptr, indices, torch.zeros(rows, dtype=torch.int64), k, gen)[1].view(rows, k)
    use_backend(monkeypatch, sampler)
    indptr = torch.full((rows + deg + 1,), rows * deg, dtype=torch.int64)
    indptr[:rows + 1] = torch.arange(rows + 1) * deg
    indices = (rows + torch.arange(deg)).repeat(rows)
    batch = sample_blocks(indptr, indices, torch.arange(rows), [k], gen)
    src, dst = batch.blocks[0].edge_index
    assert torch.equal(dst, torch.arange(rows).repeat_interleave(k))  # k edges per hub, grouped by hub
    return (batch.node_ids[src] - rows + 1).view(rows, k)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("deg,k", [(50, 10), (200, 5), (200, 40), (200, 100)])
def test_each_neighbour_equally_likely_on_a_high_degree_node(monkeypatch: pytest.MonkeyPatch, sampler: str, deg: int,
                                                              k: int) -> None:
    picks = _draws(monkeypatch, sampler, deg, k, 4000, 11)
    assert bool((picks.sort(1).values.diff(dim=1) > 0).all())  # without replacement
    assert bool((picks >= 1).all()) and bool((picks <= deg).all())
    counts = torch.bincount(picks.flatten(), minlength=deg + 1)[1:]
    assert _chi2(counts) < _CHI2_999[deg - 1]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("deg,k", [(5, 2), (7, 3), (11, 5)])
def test_every_k_subset_equally_often_on_a_small_node(monkeypatch: pytest.MonkeyPatch, sampler: str, deg: int,
                                                      k: int) -> None:
    subsets = {c: i for i, c in enumerate(itertools.combinations(range(1, deg + 1), k))}
    draws = 200 * len(subsets)
    picks = _draws(monkeypatch, sampler, deg, k, draws, 5)
    ids = [subsets[tuple(sorted(row))] for row in picks.tolist()]
    counts = torch.bincount(torch.tensor(ids), minlength=len(subsets))
    df = len(subsets) - 1
    # 0.999 quantile by the Wilson-Hilferty approximation where the table has no entry
    limit = _CHI2_999.get(df, df * (1 - 2 / (9 * df) + 3.09 * math.sqrt(2 / (9 * df))) ** 3)
    assert _chi2(counts) < limit


def test_reference_is_uniform_too() -> None:
    """The oracle itself passes the same check (so the two share a distribution, not just a test)."""
    indptr, indices = _star(50)
    _, nbr = ref.sample_neighbors(indptr, indices, torch.zeros(4000, dtype=torch.int64), 10,
                                  torch.Generator().manual_seed(11))
    assert _chi2(torch.bincount(nbr, minlength=51)[1:]) < _CHI2_999[49]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fanouts", [[4, 3], [10, 5], [15, 10, 5], [-1, 2], [3, -1], [40]])
def test_structure_matches_the_reference(monkeypatch: pytest.MonkeyPatch, backend: str, fanouts: list[int]) -> None:
    use_backend(monkeypatch, backend)
    graph = make_graph(num_nodes=600, max_degree=45, seed=len(fanouts) + fanouts[0])
    seeds = torch.tensor([5, 9, 5, 100, 7, 9, 599, 0])
    new = sample_blocks(graph.indptr, graph.indices, seeds, fanouts, torch.Generator().manual_seed(3))
    old = ref.sample_blocks(graph.indptr, graph.indices, seeds, fanouts, torch.Generator().manual_seed(3))
    assert torch.equal(new.seeds, old.seeds)
    assert len(new.blocks) == len(old.blocks)
    nodes = new.node_ids
    assert nodes.unique().numel() == nodes.numel()
    assert new.blocks[0].num_dst == old.blocks[0].num_dst  # the (random-free) seeds side
    deg = graph.indptr[1:] - graph.indptr[:-1]
    for hop, (bn, bo) in enumerate(zip(new.blocks, old.blocks)):
        src, dst = bn.edge_index
        want = deg[nodes[:bn.num_dst]] if fanouts[hop] < 0 else deg[nodes[:bn.num_dst]].clamp(max=fanouts[hop])
        assert torch.equal(torch.bincount(dst, minlength=bn.num_dst), want)  # as the reference's rule
        assert bool((dst[1:] >= dst[:-1]).all())  # grouped by destination, in frontier order
        # frontier: previous nodes first, then new sources in first-occurrence order
        prev = nodes[:bn.num_dst]
        seen = set(prev.tolist())
        order = []
        for s in nodes[src].tolist():
            if s not in seen:
                seen.add(s)
                order.append(s)
        assert nodes[bn.num_dst:bn.num_src].tolist() == order
        for s, d in zip(src.tolist(), dst.tolist()):
            v = int(nodes[d])
            assert int(nodes[s]) in graph.indices[graph.indptr[v]:graph.indptr[v + 1]].tolist()
        if hop == 0 and fanouts[0] == -1:  # keeps all: exactly the reference's first hop
            assert torch.equal(nodes[src], old.node_ids[bo.edge_index[0]]) and torch.equal(dst, bo.edge_index[1])
            assert torch.equal(nodes[:bn.num_src], old.node_ids[:bo.num_src])


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeded_and_equal_to_itself_not_to_the_reference(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    graph = make_graph(num_nodes=500, max_degree=40, seed=1)
    seeds = torch.arange(0, 500, 7)
    a = sample_blocks(graph.indptr, graph.indices, seeds, [10, 5], torch.Generator().manual_seed(9))
    b = sample_blocks(graph.indptr, graph.indices, seeds, [10, 5], torch.Generator().manual_seed(9))
    assert torch.equal(a.node_ids, b.node_ids)
    for x, y in zip(a.blocks, b.blocks):
        assert torch.equal(x.edge_index, y.edge_index)


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_table_is_clean_after_use(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    graph = make_graph(num_nodes=300, max_degree=20, seed=2)
    for i in range(3):
        batch = sample_blocks(graph.indptr, graph.indices, torch.arange(i, 300, 11), [5, 5],
                              torch.Generator().manual_seed(i))
        assert batch.node_ids.unique().numel() == batch.node_ids.numel()
    for slots in sampling._TABLES.free.values():
        for table, _ in slots:
            assert bool((table == sampling._EMPTY).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_edgeless(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    use_backend(monkeypatch, backend)
    indptr = torch.zeros(5, dtype=torch.int64)
    indices = torch.empty(0, dtype=torch.int32)
    batch = sample_blocks(indptr, indices, torch.tensor([3, 1, 3]), [4, -1], torch.Generator().manual_seed(0))
    assert batch.seeds.tolist() == [3, 1] and batch.node_ids.tolist() == [3, 1] and batch.num_edges == 0
    empty = sample_blocks(indptr, indices, torch.empty(0, dtype=torch.int64), [2], torch.Generator())
    assert empty.node_ids.numel() == 0 and empty.num_edges == 0


@pytest.mark.parametrize("n,k", [(1024, 10), (300, 25), (64, 40), (2000, 5)])
def test_floyd_resolutions_agree(monkeypatch: pytest.MonkeyPatch, n: int, k: int) -> None:
    """Step by step (float64) and all steps at once (pointer doubling) give the same offsets from the same draws."""
    deg = torch.randint(1, 3 * k, (n,), generator=torch.Generator().manual_seed(n + k))
    big = deg > k
    monkeypatch.setattr(sampling, "_STEPWISE_MIN", 0)
    monkeypatch.setattr(sampling, "_STEPWISE_MAX_K", 1 << 30)
    stepwise = sampling._floyd(deg, k, torch.Generator().manual_seed(4))
    monkeypatch.setattr(sampling, "_STEPWISE_MIN", 1 << 40)
    monkeypatch.setattr(sampling, "_STEPWISE_MAX_K", 0)
    at_once = sampling._floyd(deg, k, torch.Generator().manual_seed(4))
    assert stepwise.dtype == at_once.dtype == torch.int64
    assert torch.equal(stepwise[:, big], at_once[:, big])
    picks = stepwise[:, big]
    assert bool((picks >= 0).all()) and bool((picks < deg[big]).all())
    assert bool((picks.sort(0).values.diff(dim=0) > 0).all())  # k distinct offsets per row
