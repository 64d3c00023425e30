"""pytest-benchmark: new sampler vs the pre-issue-12 reference on ``default`` [10, 5] and ``papers100m-like``
[15, 10, 5], 1024 seeds, 1 and 2 torch threads (timing only; the asserts check the output's semantics).

Graphs are generated into the session cache (``papers100m-like`` takes about a minute on 2 cores), hence ``slow``.
"""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import sampling
from accessbench.workloads.config import load_workload
from accessbench.workloads.graphs import materialise
from tests.kernels import sampling_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["default", "papers100m-like"])
def preset_graph(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    wl = load_workload(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACCESSBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return wl, materialise(wl)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("impl", ["new", "reference"])
def test_bench_sampling(benchmark, preset_graph, threads: int, impl: str) -> None:
    wl, g = preset_graph
    fn = sampling.sample_blocks if impl == "new" else sampling_reference.sample_blocks
    seeds = g.train_ids[torch.randint(0, g.train_ids.numel(), (1024,), generator=torch.Generator().manual_seed(0))]
    gen = torch.Generator().manual_seed(0)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch = benchmark.pedantic(lambda: fn(g.indptr, g.indices, seeds, wl.fanouts, gen), rounds=10,
                                   warmup_rounds=1)
    finally:
        torch.set_num_threads(saved)
    benchmark.extra_info.update(preset=wl.name, fanouts=list(wl.fanouts), threads=threads, impl=impl,
                                edges=batch.num_edges)
    if benchmark.stats is not None:
        benchmark.extra_info["edges_per_s"] = batch.num_edges / benchmark.stats.stats.median
    # semantics, as the reference defines them: unique seeds first, unique nodes, min(deg, fanout) per dst
    uniq = sampling_reference.unique_first_occurrence(seeds)[0]
    assert torch.equal(batch.seeds, uniq) and torch.equal(batch.node_ids[:uniq.numel()], uniq)
    assert batch.node_ids.unique().numel() == batch.node_ids.numel()
    deg = g.indptr[1:] - g.indptr[:-1]
    for block, fanout in zip(batch.blocks, wl.fanouts):
        want = deg[batch.node_ids[:block.num_dst]].clamp(max=fanout)
        assert torch.equal(torch.bincount(block.edge_index[1], minlength=block.num_dst), want)
