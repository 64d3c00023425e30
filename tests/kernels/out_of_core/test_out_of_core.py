"""Exactness of every io x layout x cache combination against the in-memory reference, and the strategy's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels import InvalidOptions, StrategyUnavailable, create, names
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.out_of_core.accounting import MemoryBudgetExceeded
from accessbench.kernels.strategies.out_of_core.kvikio_io import kvikio_status
from accessbench.kernels.strategies.out_of_core.strategy import OutOfCore
from accessbench.kernels.types import GraphData
from tests.kernels.out_of_core.ooc_support import make_store, padded_graph, reference_features

CACHES = {
    "none": {},
    "degree": {"host_cache_bytes": 64 << 10},
    "presample": {"host_cache_bytes": 64 << 10, "hot": "presample", "presample_batches": 2},
    "lookahead": {"lookahead_bytes": 96 << 10},
    "degree+lookahead": {"host_cache_bytes": 48 << 10, "lookahead_bytes": 64 << 10},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphData, torch.Tensor]:
    g = make_store(tmp_path_factory.mktemp("ooc"), num_nodes=3000, feat_dim=64)  # 256 B rows, 768 KB
    return g, reference_features(g)


def _seed_batches(n: int, size: int, num_nodes: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, num_nodes, (size,), generator=g) for _ in range(n)]


@pytest.mark.parametrize("cache", sorted(CACHES))
@pytest.mark.parametrize("layout", ["rowwise", "packed"])
@pytest.mark.parametrize("io", ["direct", "mmap"])
def test_every_combination_is_exact(store: tuple[GraphData, torch.Tensor], io: str, layout: str, cache: str) -> None:
    g, ref = store
    seeds = _seed_batches(7, 48, g.num_nodes, seed=hash((io, layout, cache)) % 1000)
    with create("out-of-core", io=io, layout=layout, superbatch=3, **CACHES[cache]) as s:
        s.prepare(g, torch.device("cpu"))
        gen, check = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        served = 0
        for i, lb in enumerate(s.load(seeds, [6, 3], generator=gen)):
            expected = sample_blocks(g.indptr, g.indices, seeds[i], [6, 3], check)  # the very batches sampled
            assert torch.equal(lb.batch.node_ids, expected.node_ids)
            assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(lb.batch.blocks, expected.blocks))
            assert torch.equal(lb.features, ref[lb.batch.node_ids])
            assert lb.overlapped and {"sample", "gather"} <= set(lb.phase_s)
            served += 1
        assert served == len(seeds)
        ids = torch.randint(0, g.num_nodes, (900,), generator=torch.Generator().manual_seed(served))
        ids = torch.cat([ids, ids[:50]])  # duplicates, unsorted
        assert torch.equal(s.gather(ids), ref[ids])
        st = s.stats()
        assert st.rows > 0 and st.bytes_by_tier["disk"] > 0
        if cache != "none":
            assert sum(st.hits.values()) > 0 and st.misses["disk"] > 0
        else:
            assert st.hit_rate() is None  # no cache tier: no hit rate (null, not 0)


@pytest.mark.parametrize(("dtype", "dim"), [(torch.float16, 1), (torch.bfloat16, 3), (torch.float32, 1030),
                                            (torch.float16, 2049)])
@pytest.mark.parametrize("io", ["direct", "mmap"])
def test_widths_dtypes_and_padded_rows(tmp_path: Path, io: str, dtype: torch.dtype, dim: int) -> None:
    graph, feats = padded_graph(tmp_path, num_nodes=300, feat_dim=dim, dtype=dtype, offset=100, pad=6)
    ids = torch.randint(0, 300, (500,), generator=torch.Generator().manual_seed(dim))
    with create("out-of-core", io=io, host_cache_bytes=8 * graph.row_bytes, lookahead_bytes=16 * graph.row_bytes,
                superbatch=2, read_buffer_bytes=1 << 20, max_io_bytes=1 << 16) as s:
        s.prepare(graph, torch.device("cpu"))
        assert torch.equal(s.gather(ids), feats[ids])
        for lb in s.load(_seed_batches(3, 20, 300, seed=dim), [3, 2], generator=torch.Generator().manual_seed(1)):
            assert torch.equal(lb.features, feats[lb.batch.node_ids])


def test_empty_and_single_gathers(store: tuple[GraphData, torch.Tensor]) -> None:
    g, ref = store
    with create("out-of-core") as s:
        s.prepare(g, torch.device("cpu"))
        assert s.gather(torch.empty(0, dtype=torch.int64)).shape == (0, g.feat_dim)
        assert torch.equal(s.gather(torch.tensor([g.num_nodes - 1])), ref[[g.num_nodes - 1]])


def test_small_read_buffer_splits_reads_without_changing_results(store: tuple[GraphData, torch.Tensor]) -> None:
    g, ref = store
    ids = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(0))[:2000]
    with create("out-of-core", read_buffer_bytes=8192, max_io_bytes=4096, depth=3) as s:
        s.prepare(g, torch.device("cpu"))
        assert torch.equal(s.gather(ids), ref[ids])


def test_page_cache_drop_is_recorded(store: tuple[GraphData, torch.Tensor]) -> None:
    g, _ = store
    with create("out-of-core", io="mmap") as s:
        s.prepare(g, torch.device("cpu"))
        drop = s.stats().extras["page_cache_drop"][0]
        assert drop["method"].endswith("posix_fadvise(POSIX_FADV_DONTNEED)")  # after releasing own mappings, if any
        assert drop["ok"] is True and drop["resident_after"] == 0.0
        assert s.stats().extras["page_cache_dropped"] is True
        s.gather(torch.arange(0, g.num_nodes, 7))
        again = s.drop_page_cache()
        assert again["ok"] and again["files"][0]["resident_before"] > 0  # the mmap reads had warmed it


def test_mmap_cold_reads_are_counted_by_the_kernel(store: tuple[GraphData, torch.Tensor]) -> None:
    g, ref = store
    with create("out-of-core", io="mmap", mmap_advice="random") as s:
        s.prepare(g, torch.device("cpu"))
        s.reset_stats()
        ids = torch.arange(0, g.num_nodes, 40)
        assert torch.equal(s.gather(ids), ref[ids])
        x = s.stats().extras
    assert x["disk_bytes_own"] == ids.numel() * 4096  # 256 B rows 40 apart: one distinct page each, all cold
    if x["disk_bytes_kernel"] is not None:
        assert x["disk_bytes_kernel"] >= x["disk_bytes_own"]


def test_page_cache_cap_keeps_the_store_under_the_budget(store: tuple[GraphData, torch.Tensor]) -> None:
    g, ref = store
    budget = g.feature_bytes // 4
    with create("out-of-core", io="mmap", page_cache_cap=True, memory_budget_bytes=budget, pipeline=False,
                read_buffer_bytes=1 << 14, max_io_bytes=1 << 12) as s:
        s.prepare(g, torch.device("cpu"))
        for lb in s.load(_seed_batches(4, 40, g.num_nodes, seed=2), [4, 2], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, ref[lb.batch.node_ids])
        assert s.stats().extras["page_cache_cap_drops"] >= 1
    with pytest.raises(InvalidOptions, match="page_cache_cap"):
        create("out-of-core", io="direct", page_cache_cap=True, memory_budget_bytes=budget)


def test_direct_own_bytes_match_the_kernel_counter(store: tuple[GraphData, torch.Tensor]) -> None:
    g, _ = store
    with create("out-of-core", io="direct") as s:
        s.prepare(g, torch.device("cpu"))
        s.reset_stats()
        s.gather(torch.arange(0, g.num_nodes, 3))
        x = s.stats().extras
    if x["disk_bytes_kernel"] is None:
        pytest.skip(f"/proc/self/io unreadable: {x.get('disk_bytes_kernel_reason')}")
    assert x["disk_bytes_own"] > 0
    # the kernel counts whole blocks: the file's partial last page is read as a full one
    assert 0 <= x["disk_bytes_kernel"] - x["disk_bytes_own"] < 4096


def test_kvikio_is_unavailable_with_a_reason_where_missing() -> None:
    ok, reason = kvikio_status()
    if ok:
        pytest.skip(f"kvikio is usable here: {reason}")
    assert "out-of-core" in names()
    assert OutOfCore.option_availability(OutOfCore.Options(io="kvikio")) == (False, reason)
    with pytest.raises(StrategyUnavailable, match="kvikio"):
        create("out-of-core", io="kvikio")


def test_device_tier_needs_cuda(store: tuple[GraphData, torch.Tensor]) -> None:
    with create("out-of-core", device_cache_bytes=1 << 20) as s, pytest.raises(StrategyUnavailable, match="CUDA"):
        s.prepare(store[0], torch.device("cpu"))


def test_in_memory_graph_is_refused() -> None:
    from tests.conftest import make_graph

    with create("out-of-core") as s, pytest.raises(StrategyUnavailable, match="feature_file"):
        s.prepare(make_graph(), torch.device("cpu"))


@pytest.mark.parametrize("bad", [{"io": "aio"}, {"layout": "columnar"}, {"depth": 0}, {"max_io_bytes": 1000},
                                 {"superbatch": 0}, {"host_cache_bytes": -1}, {"nonsense": 1},
                                 {"memory_budget_bytes": 1 << 20, "host_cache_bytes": 1 << 20}])
def test_bad_options_are_refused_listing_what_is_valid(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidOptions):
        create("out-of-core", **bad)


def test_cli_strings_are_coerced() -> None:
    s = create("out-of-core", io="mmap", layout="packed", lookahead_bytes="4096", pipeline="false",
               memory_budget_bytes="none")
    assert s.options.lookahead_bytes == 4096 and s.options.pipeline is False and s.options.memory_budget_bytes is None


def test_memory_budget_caps_buffers(store: tuple[GraphData, torch.Tensor]) -> None:
    g, ref = store
    seeds = _seed_batches(2, 400, g.num_nodes, seed=1)
    with create("out-of-core", memory_budget_bytes=(64 << 10) + 8192, read_buffer_bytes=8192, max_io_bytes=4096,
                host_cache_bytes=64 << 10) as s:
        s.prepare(g, torch.device("cpu"))
        with pytest.raises(MemoryBudgetExceeded, match="memory_budget_bytes"):
            list(s.load(seeds, [10, 10], generator=torch.Generator().manual_seed(0)))
    budget = 4 << 20
    with create("out-of-core", memory_budget_bytes=budget, host_cache_bytes=128 << 10, lookahead_bytes=128 << 10,
                read_buffer_bytes=256 << 10, max_io_bytes=64 << 10) as s:
        s.prepare(g, torch.device("cpu"))
        for lb in s.load(seeds, [5, 5], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, ref[lb.batch.node_ids])
        assert 0 < s.stats().extras["host_bytes_peak"] <= budget


def test_stats_reset_and_extras(store: tuple[GraphData, torch.Tensor]) -> None:
    g, _ = store
    with create("out-of-core", layout="packed", host_cache_bytes=64 << 10, superbatch=2) as s:
        s.prepare(g, torch.device("cpu"))
        list(s.load(_seed_batches(3, 32, g.num_nodes, seed=4), [4], generator=torch.Generator().manual_seed(0)))
        st = s.stats()
        assert st.rows > 0 and st.extras["iops"] and st.extras["preprocess_s"] > 0
        assert set(st.extras["hit_rate_by_tier"]) == {"host"}
        s.reset_stats()
        st = s.stats()
        assert st.rows == 0 and st.extras["disk_rows"] == 0
        assert st.extras["packed_bytes"] > 0 and "page_cache_drop" in st.extras  # kept across resets
    assert not Path(st.extras["packed_dir"]).exists()  # removed on close


def test_id_checks_happen_inside_the_gather_phase(store: tuple[GraphData, torch.Tensor]) -> None:
    """Moving and validating the ids is timed as part of ``gather``, as in every strategy."""
    import contextlib

    from accessbench.kernels import InvalidIds

    g, _ = store
    entered: list[str] = []

    @contextlib.contextmanager
    def hook(name: str):  # type: ignore[no-untyped-def]
        entered.append(name)
        yield

    with create("out-of-core") as s:
        s.prepare(g, torch.device("cpu"))
        s.phase_hook = hook
        with pytest.raises(InvalidIds):
            s.gather(torch.tensor([0, g.num_nodes]))
    assert entered == ["gather"]


def test_close_stops_a_load_left_open(store: tuple[GraphData, torch.Tensor]) -> None:
    """Closing the strategy with a ``load`` iterator still open stops its threads before the files are closed."""
    import threading
    import time

    g, ref = store
    s = create("out-of-core", superbatch=2)
    s.prepare(g, torch.device("cpu"))
    it = s.load(_seed_batches(6, 32, g.num_nodes, seed=8), [4, 2], generator=torch.Generator().manual_seed(0))
    lb = next(it)
    assert torch.equal(lb.features, ref[lb.batch.node_ids])
    deadline = time.monotonic() + 10
    while not s._pipes[0]._queues[-1].full() and time.monotonic() < deadline:
        time.sleep(0.01)  # let the producer run ahead until it waits on the full queue
    s.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("accessbench-ooc") and t.is_alive()]
    it.close()
