"""Benchmarks of the ``cached`` strategy (pytest-benchmark; timing only, no pass/fail on speed).

- cached gather vs cpu-centric on the same sampled ids (CPU here; the GPU figures come from the caches study,
  ``accessbench study run caches``, which ``check --gpu`` runs);
- policy step throughput (ids per second) per policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.cached import PolicyConfig, make_policy
from accessbench.kernels.strategies.cached.placement import initial_ids

POLICIES = ("degree", "presample", "lru", "clock", "hybrid", "belady")


def _power_law_graph(tmp: Path):
    from accessbench.workloads.generate import GraphSpec
    from accessbench.workloads.graphs import ensure_store
    from accessbench.workloads.store import open_store

    return open_store(ensure_store(GraphSpec(num_nodes=20_000, avg_degree=12, feat_dim=64, seed=3), tmp / "g",
                                   name="bench"))


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    return _power_law_graph(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def batches(graph):
    g = torch.Generator().manual_seed(0)
    train = graph.train_ids
    return [sample_blocks(graph.indptr, graph.indices, train[torch.randint(0, train.numel(), (256,), generator=g)],
                          (10, 5), g).node_ids for _ in range(8)]


@pytest.mark.parametrize("name,options", [
    ("cpu-centric", {}),
    ("cached", {"policy": "degree"}),
    ("cached", {"policy": "lru"}),
    ("cached", {"policy": "hybrid", "hybrid_lookahead": 0}),
])
def test_bench_gather(benchmark, graph, batches, name: str, options: dict) -> None:
    if name == "cached":
        options = {**options, "cache_fraction": 0.2, "presample_fanouts": "10,5", "presample_batch_size": 256}
    s = registry.create(name, **options)
    s.prepare(graph, torch.device("cpu"))
    benchmark.pedantic(lambda: [s.gather(b) for b in batches], rounds=5, warmup_rounds=1)
    st = s.stats()
    nbytes = sum(b.numel() for b in batches) * graph.row_bytes
    benchmark.extra_info.update(bytes_per_round=nbytes, hit_rate=st.hit_rate(), device="cpu",
                                note="CPU only: the cache is host memory here; GPU figures: accessbench check --gpu")
    if benchmark.stats is not None:
        benchmark.extra_info["gbps_median"] = nbytes / benchmark.stats.stats.median / 1e9
    assert torch.equal(s.gather(batches[0]), graph.features[batches[0]])
    s.close()


@pytest.mark.parametrize("policy", POLICIES)
def test_bench_policy_step(benchmark, graph, batches, policy: str) -> None:
    degree = torch.bincount(graph.indices.to(torch.int64), minlength=graph.num_nodes)
    importance = {"degree": degree, "presample": degree}
    cfg = PolicyConfig(presample_batches=8, hybrid_lookahead=4)
    cap = graph.num_nodes // 5

    def run() -> list[int]:
        """Hits per batch of a fresh policy stepped over every batch."""
        init = initial_ids(policy, importance=importance, capacity=cap, rank=0, world=1, placement="replicate",
                           config=cfg)
        p = make_policy(policy, cap, graph.num_nodes, importance=importance, initial_ids=init, config=cfg)
        if policy == "belady":
            p.plan(batches)
        elif policy == "hybrid":
            p.hint(batches)
        hits = []
        for b in batches:
            st = p.step(b)
            assert torch.equal(st.hit, st.slots >= 0)
            hits.append(st.num_hits)
        assert p.occupied <= cap
        return hits

    hits = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    ids = sum(b.numel() for b in batches)
    benchmark.extra_info.update(ids_per_round=ids, hit_rate=sum(hits) / ids)
    assert all(0 <= h <= b.numel() for h, b in zip(hits, batches, strict=True))
    assert 0 < sum(hits) < ids  # a fifth of a power-law graph cached: some ids hit, not all
    assert run() == hits  # every round starts from the same state: the benchmarked work is the same each time
