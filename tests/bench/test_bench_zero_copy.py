"""pytest-benchmark session for zero-copy (GPU only): gather and sampling against cpu-centric and device-resident.

Run with ``python -m pytest tests/bench/test_bench_zero_copy.py -m gpu --benchmark-enable``; the timer synchronises
the device, inputs rotate between rounds, and ``extra_info`` carries the strategy, bytes and GB/s (edges/s).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import torch
from pytest_benchmark.fixture import BenchmarkFixture

from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.sampling import unique_first_occurrence
from accessbench.kernels.types import GraphData, SampledBatch

pytestmark = pytest.mark.gpu
STRATEGIES = ("zero-copy", "cpu-centric", "device-resident")


def cuda_timer() -> float:
    """``perf_counter`` after the device has finished its queued work."""
    torch.cuda.synchronize()
    return time.perf_counter()


def _graph(num_nodes: int, row_bytes: int, max_degree: int = 30) -> GraphData:
    g = torch.Generator().manual_seed(0)
    deg = torch.randint(0, max_degree + 1, (num_nodes,), generator=g)
    indptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(deg, 0)
    indices = torch.randint(0, num_nodes, (int(indptr[-1]),), generator=g, dtype=torch.int32)
    feats = torch.randn(num_nodes, row_bytes // 4, generator=g)
    return GraphData(num_nodes, indptr, indices, feats, name="bench")


@pytest.fixture(scope="module")
def graph() -> GraphData:
    return _graph(1_000_000, 512)


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest, graph: GraphData) -> Iterator[AccessStrategy]:
    pytest.importorskip("triton")
    with registry.create(request.param) as s:
        s.prepare(graph, torch.device("cuda", torch.cuda.current_device()))
        yield s


def _report(benchmark: BenchmarkFixture, name: str, amount: float, unit: str, nbytes: int | None = None) -> None:
    benchmark.extra_info["strategy"] = name
    if nbytes is not None:
        benchmark.extra_info["bytes"] = nbytes
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats is not None else None
    benchmark.extra_info[unit] = amount / median / (1e9 if unit == "GB/s" else 1) if median else None


@pytest.mark.benchmark(group="zero-copy gather 512 B x 100k ids", timer=cuda_timer)
def test_gather(benchmark: BenchmarkFixture, strategy: AccessStrategy, graph: GraphData) -> None:
    n = 100_000
    dev = strategy.device if strategy.name != "cpu-centric" else torch.device("cpu")
    gen = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, graph.num_nodes, (n,), generator=gen).to(dev) for _ in range(8)]
    turn = itertools.cycle(ids)
    last: list[torch.Tensor] = []

    def setup() -> tuple[tuple[torch.Tensor], dict[str, object]]:
        last[:] = [next(turn)]
        return (last[0],), {}

    out = benchmark.pedantic(strategy.gather, setup=setup, rounds=30, warmup_rounds=3)
    assert out.shape == (n, graph.feat_dim)
    assert torch.equal(out.cpu(), graph.features[last[0].cpu()])  # the last round's rows, exact
    _report(benchmark, strategy.name, n * graph.row_bytes, "GB/s", n * graph.row_bytes)


@pytest.mark.benchmark(group="zero-copy sample [15, 10, 5] x 1024 seeds", timer=cuda_timer)
def test_sample(benchmark: BenchmarkFixture, strategy: AccessStrategy, graph: GraphData) -> None:
    gen = torch.Generator().manual_seed(2)
    seeds = itertools.cycle([torch.randint(0, graph.num_nodes, (1024,), generator=gen) for _ in range(8)])
    sgen = torch.Generator(device=strategy.sample_device).manual_seed(0)
    edges: list[int] = []
    last: list[torch.Tensor] = []

    def once(s: torch.Tensor) -> SampledBatch:
        last[:] = [s]
        batch = strategy.sample(s, [15, 10, 5], generator=sgen)
        edges.append(batch.num_edges)
        return batch

    batch = benchmark.pedantic(once, setup=lambda: ((next(seeds),), {}), rounds=20, warmup_rounds=3)
    _report(benchmark, strategy.name, sum(edges) / len(edges), "edges/s")
    # the last round's batch: its own seeds first, at most ``fanout`` neighbours per node and hop, real edges only
    uniq, _ = unique_first_occurrence(last[0])
    assert batch.num_edges > 0 and torch.equal(batch.seeds.cpu(), uniq)
    assert torch.equal(batch.node_ids[: uniq.numel()].cpu(), uniq)
    for block, fanout in zip(batch.blocks, (15, 10, 5), strict=True):
        per_dst = torch.bincount(block.edge_index[1].cpu(), minlength=block.num_dst)
        assert int(per_dst.max()) <= fanout
    assert _edges_exist(graph, batch)


def _edges_exist(graph: GraphData, batch: SampledBatch) -> bool:
    """True when every sampled (src, dst) pair of every hop is an edge dst -> src of ``graph``'s CSR."""
    n = graph.num_nodes
    rows = torch.repeat_interleave(torch.arange(n), graph.indptr[1:] - graph.indptr[:-1])
    known = rows * n + graph.indices.to(torch.int64)
    ids = batch.node_ids.cpu()
    sampled = torch.cat([ids[b.edge_index[1].cpu()] * n + ids[b.edge_index[0].cpu()] for b in batch.blocks])
    return bool(torch.isin(sampled, known).all())
