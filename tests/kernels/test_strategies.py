"""Every registered strategy that can run here gathers exactly what ``features[ids]`` holds."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidIds
from tests.conftest import make_graph, stored

DEVICE = torch.device("cpu")
AVAILABLE = [n for n, (ok, _) in registry.availability().items() if ok]
#: strategies that can run with the CPU as the compute device (the rest are tested in the gpu-marked tests)
CPU_CAPABLE = [n for n in AVAILABLE if not registry.get(n)().needs_cuda]


@pytest.fixture(params=CPU_CAPABLE)
def strategy_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=AVAILABLE)
def any_strategy_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("width", [1, 3, 16, 129, 1024])
def test_gather_is_exact(strategy_name: str, dtype: torch.dtype, width: int, tmp_path) -> None:
    graph = stored(make_graph(num_nodes=257, feat_dim=width, dtype=dtype, seed=width), tmp_path / "g")
    with registry.create(strategy_name) as s:
        s.prepare(graph, DEVICE)
        for seed in range(3):  # fresh ids each time: unsorted, with duplicates
            ids = torch.randint(0, graph.num_nodes, (500,), generator=torch.Generator().manual_seed(seed))
            assert ids.unique().numel() < ids.numel()
            out = s.gather(ids)
            assert out.dtype == dtype and out.shape == (500, width)
            assert torch.equal(out.cpu(), graph.features[ids])


def test_gather_edge_cases(strategy_name: str, small_graph, tmp_path) -> None:
    small_graph = stored(small_graph, tmp_path / "g")
    with registry.create(strategy_name) as s:
        s.prepare(small_graph, DEVICE)
        empty = s.gather(torch.empty(0, dtype=torch.int64))
        assert empty.shape == (0, small_graph.feat_dim)
        same = torch.full((64,), 7, dtype=torch.int64)
        assert torch.equal(s.gather(same).cpu(), small_graph.features[same])
        rev = torch.arange(small_graph.num_nodes - 1, -1, -1)
        assert torch.equal(s.gather(rev).cpu(), small_graph.features[rev])
        i32 = torch.tensor([3, 1, 2], dtype=torch.int32)
        assert torch.equal(s.gather(i32).cpu(), small_graph.features[i32.long()])
        for bad in (torch.tensor([small_graph.num_nodes]), torch.tensor([-1]), torch.tensor([0.5])):
            with pytest.raises(InvalidIds):
                s.gather(bad)


def test_stats_count_rows_and_bytes(strategy_name: str, small_graph, tmp_path) -> None:
    small_graph = stored(small_graph, tmp_path / "g")
    with registry.create(strategy_name) as s:
        s.prepare(small_graph, DEVICE)
        s.gather(torch.arange(10))
        s.reset_stats()
        s.gather(torch.arange(25))
        st = s.stats()
        assert st.rows == 25
        assert st.bytes_needed == 25 * small_graph.row_bytes
        assert sum(st.bytes_by_tier.values()) >= st.bytes_needed


def test_load_yields_exact_batches(strategy_name: str, small_graph, tmp_path) -> None:
    small_graph = stored(small_graph, tmp_path / "g")
    seeds = [torch.arange(i, i + 16) for i in range(0, 64, 16)]
    with registry.create(strategy_name) as s:
        s.prepare(small_graph, DEVICE)
        gen = torch.Generator(device=s.sample_device).manual_seed(0)
        loaded = list(s.load(seeds, [4, 3], generator=gen))
    assert len(loaded) == 4
    for lb, sd in zip(loaded, seeds):
        assert torch.equal(lb.batch.seeds.cpu(), sd)
        assert torch.equal(lb.features.cpu(), small_graph.features[lb.batch.node_ids.cpu()])
        assert "sample" in lb.phase_s and lb.phase_s["sample"] > 0


@pytest.mark.parametrize("prefetch", [1, 3])
def test_cpu_centric_prefetch_matches_sequential(small_graph, prefetch: int) -> None:
    seeds = [torch.arange(i, i + 8) for i in range(0, 80, 8)]

    def run(**opts) -> list:
        with registry.create("cpu-centric", **opts) as s:
            s.prepare(small_graph, DEVICE)
            gen = torch.Generator().manual_seed(3)
            return [(lb.batch.node_ids, lb.features, lb.overlapped) for lb in s.load(seeds, [5, 2], generator=gen)]

    seq, pre = run(), run(prefetch=prefetch, threads=1)
    assert len(seq) == len(pre) == 10
    for (n1, f1, o1), (n2, f2, o2) in zip(seq, pre):
        assert torch.equal(n1, n2) and torch.equal(f1, f2)
        assert not o1 and o2


def test_cpu_centric_prefetch_propagates_errors(small_graph) -> None:
    seeds = [torch.arange(0, 8), torch.tensor([small_graph.num_nodes + 5])]
    with registry.create("cpu-centric", prefetch=2) as s:
        s.prepare(small_graph, DEVICE)
        it = s.load(seeds, [3], generator=torch.Generator().manual_seed(0))
        next(it)
        with pytest.raises(InvalidIds):
            next(it)


def test_cpu_centric_pinned_staging_needs_cuda(small_graph) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine can pin memory")
    with registry.create("cpu-centric", staging="pinned") as s:
        with pytest.raises(Exception, match="staging=pinned needs CUDA"):
            s.prepare(small_graph, DEVICE)


def test_store_backed_features_are_exact(strategy_name: str, tiny_store) -> None:
    from accessbench.workloads.store import open_store

    graph = open_store(tiny_store)
    ids = torch.randint(0, graph.num_nodes, (999,), generator=torch.Generator().manual_seed(11))
    with registry.create(strategy_name) as s:
        s.prepare(graph, DEVICE)
        assert torch.equal(s.gather(ids).cpu(), graph.features[ids])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_gather_is_exact_on_gpu(any_strategy_name: str, dtype: torch.dtype, tmp_path) -> None:
    graph = stored(make_graph(num_nodes=1000, feat_dim=100, dtype=dtype), tmp_path / "g")
    device = torch.device("cuda")
    with registry.create(any_strategy_name) as s:
        s.prepare(graph, device)
        ids = torch.randint(0, graph.num_nodes, (5000,))
        out = s.gather(ids)
        assert out.device.type == "cuda"
        assert torch.equal(out.cpu(), graph.features[ids])
        gen = torch.Generator(device=s.sample_device).manual_seed(0)
        for lb in s.load([torch.arange(0, 64), torch.arange(64, 128)], [5, 5], generator=gen):
            assert lb.features.device.type == "cuda"
            assert torch.equal(lb.features.cpu(), graph.features[lb.batch.node_ids.cpu()])


def test_cpu_centric_prefetch_counts_only_consumed_batches(small_graph) -> None:
    """Counters cover exactly the batches handed out after reset_stats, however far the prefetcher ran ahead."""
    seeds = [torch.arange(i, i + 8) for i in range(0, 96, 8)]

    def rows_after_reset(**opts) -> tuple[int, int]:
        with registry.create("cpu-centric", **opts) as s:
            s.prepare(small_graph, DEVICE)
            it = s.load(seeds, [5, 2], generator=torch.Generator().manual_seed(3))
            for _ in range(2):  # "warm-up"
                next(it)
            s.reset_stats()
            expected = sum(next(it).features.shape[0] for _ in range(6))
            st = s.stats()
            it.close()
            return st.rows, expected

    got, expected = rows_after_reset()
    assert got == expected
    got_pre, expected_pre = rows_after_reset(prefetch=4, threads=1)
    assert got_pre == expected_pre == expected
