"""Benchmark sessions: gather, sample and one training step for cpu-centric and device-resident on the tiny preset.

Each round is timed with ``synchronized_perf_counter`` (GPU work finished at both edges); inputs rotate between
rounds so caches do not flatter the numbers; ``extra_info`` carries strategy, workload, bytes and GB/s. With
benchmarking disabled (the normal test command) each body runs once and its result is still checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.types import GraphData
from accessbench.workloads.batches import random_ids, seed_batches
from accessbench.workloads.config import Workload
from accessbench.workloads.models import build_model, train_step
from tests.bench.timers import synchronized_perf_counter

STRATEGIES = ("cpu-centric", "device-resident")
ROUNDS, WARMUP = 30, 3


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest, tiny_graph: GraphData,
             compute_device: torch.device) -> Iterator[AccessStrategy]:
    """A prepared strategy on the compute device (skipped with the reason where it cannot run here)."""
    ok, reason = registry.get(request.param).availability()
    if not ok:
        pytest.skip(f"{request.param}: {reason}")
    s = registry.create(request.param)
    s.prepare(tiny_graph, compute_device)
    yield s
    s.close()


def _record(benchmark: Any, *, strategy: AccessStrategy, workload: Workload, mode: str, nbytes: int,
            what: str, **extra: Any) -> None:
    """Fill ``extra_info``; GB/s from the median round when benchmarking is enabled, else None (not measured)."""
    stats = getattr(benchmark, "stats", None)
    median = stats.stats.median if stats else None
    benchmark.extra_info.update(
        strategy=strategy.name, workload=workload.name, mode=mode, device=str(strategy.device), bytes=nbytes,
        bytes_are=what, gbps=nbytes / median / 1e9 if median else None, **extra)


pytestmark = pytest.mark.benchmark(timer=synchronized_perf_counter, min_rounds=ROUNDS)


@pytest.mark.benchmark(group="gather")
def test_gather(benchmark: Any, strategy: AccessStrategy, tiny_graph: GraphData, tiny_workload: Workload) -> None:
    gen = torch.Generator().manual_seed(0)
    id_sets = itertools.cycle([random_ids(tiny_graph.num_nodes, tiny_workload.gather_ids, generator=gen)
                               for _ in range(8)])
    last: list[torch.Tensor] = []

    def setup() -> tuple[tuple[torch.Tensor], dict[str, Any]]:
        ids = next(id_sets)
        last[:] = [ids]
        return (ids,), {}

    out = benchmark.pedantic(strategy.gather, setup=setup, rounds=ROUNDS, warmup_rounds=WARMUP)
    assert torch.equal(out.cpu(), tiny_graph.features[last[0]])
    _record(benchmark, strategy=strategy, workload=tiny_workload, mode="gather",
            nbytes=tiny_workload.gather_ids * tiny_graph.row_bytes, what="feature rows delivered",
            rows=tiny_workload.gather_ids)


@pytest.mark.benchmark(group="sample")
def test_sample(benchmark: Any, strategy: AccessStrategy, tiny_graph: GraphData, tiny_workload: Workload) -> None:
    wl = tiny_workload
    batches = itertools.cycle(list(seed_batches(tiny_graph, wl.batch_size, seed=wl.seed, steps=8)))
    gen = torch.Generator(device=strategy.sample_device).manual_seed(wl.seed)

    def setup() -> tuple[tuple[torch.Tensor, tuple[int, ...]], dict[str, Any]]:
        return (next(batches), wl.fanouts), {"generator": gen}

    batch = benchmark.pedantic(strategy.sample, setup=setup, rounds=ROUNDS, warmup_rounds=WARMUP)
    assert batch.num_edges > 0 and torch.equal(batch.node_ids[: batch.seeds.numel()].cpu(), batch.seeds.cpu())
    # bytes of sampled structure produced: int64 (src, dst) per edge plus the unique node ids
    nbytes = 16 * batch.num_edges + 8 * batch.node_ids.numel()
    _record(benchmark, strategy=strategy, workload=wl, mode="sample", nbytes=nbytes,
            what="sampled structure produced (last round)", edges=batch.num_edges)


@pytest.mark.benchmark(group="train")
def test_train_step(benchmark: Any, strategy: AccessStrategy, tiny_graph: GraphData,
                    tiny_workload: Workload, compute_device: torch.device) -> None:
    wl = tiny_workload
    assert tiny_graph.labels is not None
    torch.manual_seed(wl.seed)
    model = build_model(wl.model, in_dim=tiny_graph.feat_dim, hidden=wl.hidden,
                        out_dim=tiny_graph.num_classes or int(tiny_graph.labels.max()) + 1,
                        num_layers=len(wl.fanouts)).to(compute_device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = tiny_graph.labels.to(compute_device)
    gen = torch.Generator(device=strategy.sample_device).manual_seed(wl.seed)
    seeds = itertools.cycle(list(seed_batches(tiny_graph, wl.batch_size, seed=wl.seed, steps=8)))
    loader = strategy.load(seeds, wl.fanouts, generator=gen)
    delivered: list[int] = []

    def step() -> float:
        loaded = next(loader)
        loss = train_step(model, opt, loaded.features, loaded.batch, labels)
        delivered.append(loaded.features.numel() * loaded.features.element_size())
        return float(loss.detach())

    try:
        loss = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=WARMUP)
    finally:
        loader.close()  # type: ignore[attr-defined]
    assert torch.isfinite(torch.tensor(loss))
    _record(benchmark, strategy=strategy, workload=wl, mode="train", nbytes=delivered[-1],
            what="feature bytes delivered per step (last round)")
