"""The ``cached`` strategy: every gather equals ``features[ids]`` through hits, misses, evictions and victim hits."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidOptions, StrategyUnavailable
from accessbench.kernels.strategies.cached import PlanError
from tests.conftest import make_graph

POLICIES = ("degree", "presample", "lru", "clock", "hybrid", "belady")
SMALL = {"presample_fanouts": "5,5", "presample_batch_size": 32, "presample_batches": 4, "hybrid_lookahead": 2,
         "superbatch": 4}


def _strategy(graph, device="cpu", **options):
    s = registry.create("cached", **{**SMALL, **options})
    s.prepare(graph, torch.device(device))
    return s


def _seed_batches(graph, n=12, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, graph.num_nodes, (size,), generator=g) for _ in range(n)]


def _check_counts(stats) -> None:
    assert sum(stats.hits.values()) + stats.misses.get("victim", stats.misses.get("device", 0)) == stats.rows
    assert stats.hits.get("device", 0) + stats.misses.get("device", 0) == stats.rows


@pytest.mark.parametrize("victim", [False, True])
@pytest.mark.parametrize("policy", POLICIES)
def test_load_is_exact(policy: str, victim: bool) -> None:
    graph = make_graph(400, 16, seed=1)
    s = _strategy(graph, policy=policy, cache_fraction=0.15, victim_buffer=victim, victim_fraction=0.2)
    gen = torch.Generator().manual_seed(3)
    for loaded in s.load(_seed_batches(graph), [5, 5], generator=gen):
        assert torch.equal(loaded.features, graph.features[loaded.batch.node_ids])
        assert "gather" in loaded.phase_s
    st = s.stats()
    _check_counts(st)
    assert 0 < st.hits["device"] < st.rows
    if policy in ("lru", "clock", "hybrid", "belady"):
        assert st.extras["evicted_rows"] > 0 and st.extras["admitted_rows"] > 0
    if victim and policy in ("lru", "clock", "belady"):
        assert st.hits["victim"] > 0
        assert st.extras["victim_prefetched_rows"] > 0  # load() copied them ahead
    assert st.bytes_by_tier["host"] > 0  # the backing path served the misses
    s.close()


@pytest.mark.parametrize("policy", ["degree", "lru", "clock", "hybrid"])
def test_direct_gathers_with_duplicates_and_unsorted_ids(policy: str) -> None:
    graph = make_graph(300, 8, seed=2)
    s = _strategy(graph, policy=policy, cache_fraction=0.2, victim_buffer=policy != "degree")
    g = torch.Generator().manual_seed(5)
    for _ in range(15):
        ids = torch.randint(0, 300, (int(torch.randint(1, 200, (1,), generator=g)),), generator=g)
        ids = torch.cat([ids, ids[:7]])  # duplicates, unsorted
        assert torch.equal(s.gather(ids), graph.features[ids])
    st = s.stats()
    assert st.rows == st.hits["device"] + st.misses["device"]
    assert s.gather(torch.empty(0, dtype=torch.int64)).shape == (0, 8)
    s.close()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("width", [1, 7, 1024, 1031])
def test_dtypes_and_widths(dtype: torch.dtype, width: int) -> None:
    graph = make_graph(120, width, dtype=dtype, max_degree=8, seed=width)
    s = _strategy(graph, policy="lru", cache_fraction=0.25, victim_buffer=True)
    g = torch.Generator().manual_seed(width)
    for _ in range(6):
        ids = torch.randint(0, 120, (60,), generator=g)
        assert torch.equal(s.gather(ids), graph.features[ids])
    assert s.stats().extras["evicted_rows"] > 0
    s.close()


def test_hashed_lookup_is_exact() -> None:
    graph = make_graph(500, 4, seed=3)
    s = _strategy(graph, policy="clock", cache_fraction=0.1, lookup="hash")
    assert s.stats().extras["lookup"] == "hash"
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        ids = torch.randint(0, 500, (90,), generator=g)
        assert torch.equal(s.gather(ids), graph.features[ids])
    s.close()


@pytest.mark.parametrize("fraction,expect_rate", [(0.0, 0.0), (1.0, 1.0)])
def test_empty_and_full_cache(fraction: float, expect_rate: float) -> None:
    graph = make_graph(200, 8, seed=4)
    s = _strategy(graph, policy="degree", cache_fraction=fraction)
    ids = torch.randint(0, 200, (150,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(s.gather(ids), graph.features[ids])
    assert s.stats().hit_rate() == expect_rate
    s.close()


def test_cache_bytes_budget_and_extras() -> None:
    graph = make_graph(200, 8, seed=4)
    s = _strategy(graph, policy="degree", cache_bytes=10 * graph.row_bytes + 5)
    ex = s.stats().extras
    assert ex["cache_rows"] == 10 and ex["cache_bytes"] == 10 * graph.row_bytes
    assert "host" in ex["cache_memory"]  # no CUDA here: the "device" cache is host memory, and says so
    assert ex["placement"] == "single" and ex["ranks"] == 1
    s.close()


def test_device_bytes_accounting() -> None:
    graph = make_graph(200, 8, seed=6)
    s = _strategy(graph, policy="lru", cache_fraction=0.2)
    ids = torch.arange(0, 100)
    s.gather(ids)
    s.gather(ids)
    st = s.stats()
    rb = graph.row_bytes
    assert st.bytes_by_tier["device"] == rb * (2 * st.hits["device"] + st.extras["admitted_rows"])
    s.close()


def test_belady_needs_a_plan_for_direct_gathers() -> None:
    graph = make_graph(200, 8, seed=7)
    s = _strategy(graph, policy="belady", cache_fraction=0.1)
    with pytest.raises(PlanError):
        s.gather(torch.tensor([1, 2, 3]))
    trace = _seed_batches(graph, n=5, size=40, seed=9)
    s.plan(trace)
    for ids in trace:
        assert torch.equal(s.gather(ids), graph.features[ids])
    s.close()


def test_unavailable_backing_is_named() -> None:
    if torch.cuda.is_available():
        pytest.skip("zero-copy may run on this machine")
    with pytest.raises(StrategyUnavailable, match="zero-copy"):
        registry.create("cached", backing="zero-copy")


@pytest.mark.parametrize("options,match", [
    ({"cache_fraction": 2}, "cache_fraction"),
    ({"cache_fraction": 0.1, "cache_bytes": 10}, "not both"),
    ({"placement": "partition", "victim_buffer": True}, "victim_buffer"),
    ({"backing_options": "threads"}, "key=value"),
    ({"backing_options": "nonsense=1"}, "nonsense"),
    ({"policy": "fifo"}, "belady"),
    ({"presample_fanouts": "10,x"}, "fanouts"),
])
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(InvalidOptions, match=match):
        registry.create("cached", **options)


def test_backing_options_reach_the_backing() -> None:
    s = registry.create("cached", backing_options="staging=pageable,threads=1")
    assert s._backing.options.threads == 1 and s._backing.options.staging == "pageable"


@pytest.mark.gpu
@pytest.mark.parametrize("policy", POLICIES)
def test_cuda_load_is_exact(policy: str) -> None:
    graph = make_graph(3000, 64, seed=8)
    s = _strategy(graph, "cuda", policy=policy, cache_fraction=0.1, victim_buffer=policy in ("lru", "belady"))
    gen = torch.Generator().manual_seed(0)
    for loaded in s.load(_seed_batches(graph, n=10, size=64), [5, 5], generator=gen):
        assert loaded.features.device.type == "cuda"
        assert torch.equal(loaded.features.cpu(), graph.features[loaded.batch.node_ids.cpu()])
    assert s.stats().extras["cache_memory"] == "device"
    s.close()


@pytest.mark.gpu
@pytest.mark.parametrize("backing", ["cpu-centric", "zero-copy"])
def test_cuda_backings_are_exact(backing: str) -> None:
    if backing not in registry.names() or not registry.get(backing).availability()[0]:
        pytest.skip(f"{backing} is not available here")
    graph = make_graph(2000, 32, dtype=torch.float16, seed=9)
    s = _strategy(graph, "cuda", policy="hybrid", cache_fraction=0.2, backing=backing, lookup="hash")
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        ids = torch.randint(0, 2000, (700,), generator=g)
        assert torch.equal(s.gather(ids.cuda()).cpu(), graph.features[ids])
    s.close()
