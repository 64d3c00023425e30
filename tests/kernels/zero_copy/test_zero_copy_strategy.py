"""The ``zero-copy`` strategy on the CPU: registration, options, availability, and its whole code path run with the
Triton kernel under ``TRITON_INTERPRET=1`` on host tensors (no pinning; the GPU path is in test_zero_copy_gpu.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidIds, InvalidOptions, StrategyUnavailable
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.zero_copy.gather_plan import csr_sector_bytes
from accessbench.kernels.strategies.zero_copy.strategy import ZeroCopy, ZeroCopyOptions
from accessbench.kernels.types import GraphData
from tests.conftest import make_graph
from tests.kernels.zero_copy.helpers import PAGE, FakeDriver, own_pages

CPU = torch.device("cpu")


def test_registered_with_its_options() -> None:
    assert "zero-copy" in registry.names()
    fields = registry.option_fields("zero-copy")
    assert {"sort_ids", "align_bytes", "vector_bytes", "max_programs", "prefetch", "file_backed"} <= set(fields)
    opts = registry.parse_options("zero-copy", {"max_programs": "8", "sort_ids": "false", "file_backed": "readonly"})
    assert (opts.max_programs, opts.sort_ids, opts.file_backed) == (8, False, "readonly")


@pytest.mark.parametrize(("key", "value", "text"), [
    ("align_bytes", 100, "power of two"), ("vector_bytes", 3, "vector_bytes"), ("max_programs", -1, "max_programs"),
    ("prefetch", 99, "prefetch"), ("file_backed", "copy", "materialize"), ("num_warps", 3, "num_warps"),
    ("tile_words", 1000, "tile_words"), ("chunk_mib", 0, "chunk_mib"),
])
def test_bad_options_are_named(key: str, value: object, text: str) -> None:
    with pytest.raises(InvalidOptions, match=text):
        registry.parse_options("zero-copy", {key: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_unavailable_without_cuda() -> None:
    ok, reason = registry.availability()["zero-copy"]
    assert not ok and "CUDA" in reason
    with pytest.raises(StrategyUnavailable, match="CUDA"):
        registry.create("zero-copy")


def test_cpu_device_is_refused_outside_the_interpreter(monkeypatch: pytest.MonkeyPatch, small_graph) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    s = ZeroCopy()
    assert s.needs_cuda and not s.has_transfer_phase
    with pytest.raises(StrategyUnavailable, match="compute device must be CUDA"):
        s.prepare(small_graph, CPU)


# ---- the whole strategy under the Triton interpreter ------------------------------------------------------------
@pytest.fixture
def interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _open(graph: GraphData, **opts: object) -> ZeroCopy:
    s = ZeroCopy(ZeroCopyOptions(**opts))  # type: ignore[arg-type]
    s.prepare(graph, CPU)
    return s


@pytest.fixture
def zc(interpret, small_graph) -> Iterator[ZeroCopy]:
    s = _open(small_graph)
    yield s
    s.close()


@pytest.mark.interpret
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int8])
@pytest.mark.parametrize("width", [1, 3, 129])
def test_gather_is_exact(interpret, dtype: torch.dtype, width: int) -> None:
    graph = make_graph(num_nodes=257, feat_dim=width, dtype=dtype, seed=width)
    with _open(graph) as s:
        ids = torch.randint(0, graph.num_nodes, (300,), generator=torch.Generator().manual_seed(width))
        out = s.gather(ids)
        assert out.dtype == dtype and torch.equal(out, graph.features[ids])


@pytest.mark.interpret
def test_gather_edge_cases(zc: ZeroCopy, small_graph) -> None:
    assert zc.gather(torch.empty(0, dtype=torch.int64)).shape == (0, small_graph.feat_dim)
    rev = torch.arange(small_graph.num_nodes - 1, -1, -1)
    assert torch.equal(zc.gather(rev), small_graph.features[rev])
    i32 = torch.tensor([3, 3, 1], dtype=torch.int32)
    assert torch.equal(zc.gather(i32), small_graph.features[i32.long()])
    for bad in (torch.tensor([small_graph.num_nodes]), torch.tensor([-1]), torch.tensor([0.5])):
        with pytest.raises(InvalidIds):
            zc.gather(bad)


@pytest.mark.interpret
@pytest.mark.parametrize("opts", [
    {"sort_ids": False}, {"max_programs": 1}, {"align_bytes": 1}, {"vector_bytes": 4}, {"tile_words": 64},
])
def test_options_keep_gathers_exact(interpret, opts: dict) -> None:
    graph = make_graph(num_nodes=200, feat_dim=24)
    with _open(graph, **opts) as s:
        ids = torch.randint(0, 200, (333,), generator=torch.Generator().manual_seed(1))
        assert torch.equal(s.gather(ids), graph.features[ids])
        if "vector_bytes" in opts:
            assert s.stats().extras["plan"]["vector_bytes"] == 4


@pytest.mark.interpret
def test_impossible_vector_width_is_refused_at_prepare(interpret) -> None:
    graph = make_graph(num_nodes=20, feat_dim=3)  # 12-byte rows allow at most 4-byte vectors
    with pytest.raises(InvalidOptions, match="vector_bytes=16"):
        _open(graph, vector_bytes=16)


@pytest.mark.interpret
def test_padded_rows_and_mapped_store(interpret, tiny_store) -> None:
    from accessbench.workloads.store import open_store

    base = make_graph(num_nodes=100, feat_dim=10)
    padded = torch.zeros(100, 13)
    padded[:, :10] = base.features
    graph = GraphData(100, base.indptr, base.indices, padded[:, :10])
    ids = torch.randint(0, 100, (150,))
    with _open(graph) as s:
        assert torch.equal(s.gather(ids), base.features[ids])
        assert s.stats().extras["plan"]["stride_vecs"] * s.stats().extras["plan"]["vector_bytes"] == 52
    store = open_store(tiny_store)
    ids = torch.randint(0, store.num_nodes, (400,))
    with _open(store) as s:
        assert torch.equal(s.gather(ids), store.features[ids])


@pytest.mark.interpret
def test_sampling_matches_the_cpu_sampler(zc: ZeroCopy, small_graph) -> None:
    seeds = torch.tensor([5, 9, 9, 100, 42])
    got = zc.sample(seeds, [6, 3], generator=torch.Generator().manual_seed(7))
    want = sample_blocks(small_graph.indptr, small_graph.indices, seeds, [6, 3], torch.Generator().manual_seed(7))
    assert torch.equal(got.node_ids, want.node_ids) and torch.equal(got.seeds, want.seeds)
    for a, b in zip(got.blocks, want.blocks):
        assert torch.equal(a.edge_index, b.edge_index) and (a.num_src, a.num_dst) == (b.num_src, b.num_dst)
    with pytest.raises(InvalidIds):
        zc.sample(torch.tensor([small_graph.num_nodes]), [2], generator=torch.Generator())


@pytest.mark.interpret
@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_load_matches_sequential_sample_and_gather(interpret, small_graph, prefetch: int) -> None:
    seeds = [torch.arange(i, i + 12) for i in range(0, 96, 12)]
    with _open(small_graph, prefetch=0) as ref:
        gen = torch.Generator().manual_seed(4)
        expected = []
        for sd in seeds:
            b = ref.sample(sd, [4, 2], generator=gen)
            expected.append((b.node_ids, ref.gather(b.node_ids)))
    with _open(small_graph, prefetch=prefetch) as s:
        loaded = list(s.load(seeds, [4, 2], generator=torch.Generator().manual_seed(4)))
    assert len(loaded) == len(seeds)
    for lb, (nodes, feats) in zip(loaded, expected):
        assert torch.equal(lb.batch.node_ids, nodes) and torch.equal(lb.features, feats)
        assert torch.equal(lb.features, small_graph.features[lb.batch.node_ids])
        assert lb.overlapped == (prefetch > 0)
        assert lb.phase_s["sample"] > 0 and lb.phase_s["gather"] > 0


@pytest.mark.interpret
def test_load_propagates_errors_and_stops_early(interpret, small_graph) -> None:
    with _open(small_graph, prefetch=2) as s:
        seeds = [torch.arange(0, 8), torch.tensor([small_graph.num_nodes + 3]), torch.arange(8)]
        it = s.load(seeds, [3], generator=torch.Generator().manual_seed(0))
        next(it)
        with pytest.raises(InvalidIds):
            next(it)
        it2 = s.load([torch.arange(i, i + 4) for i in range(0, 200, 4)], [3], generator=torch.Generator())
        next(it2)
        it2.close()  # the consumer stops early: the producer thread must end
        assert s._pipelines == []


@pytest.mark.interpret
def test_stats(zc: ZeroCopy, small_graph) -> None:
    zc.gather(torch.arange(10))
    zc.reset_stats()
    assert zc.stats().rows == 0 and zc.stats().extras["kernel_calls"] == 0
    zc.gather(torch.arange(25))
    batch = zc.sample(torch.arange(5), [4], generator=torch.Generator().manual_seed(0))
    st = zc.stats()
    rb = small_graph.row_bytes
    csr = 16 * 5 + small_graph.indices.element_size() * batch.num_edges
    assert st.rows == 25 and st.bytes_needed == 25 * rb
    assert st.bytes_by_tier == {"h2d": 25 * rb + csr, "host": 25 * rb + csr}
    ex = st.extras
    assert ex["kernel_calls"] == 1 and ex["kernel_s"] > 0 and ex["kernel_gbps"] > 0
    assert ex["csr_bytes"] == csr and ex["feature_sector_bytes"] >= 25 * rb
    assert ex["pcie_read_bytes_est"] == ex["feature_sector_bytes"] + ex["csr_sector_bytes"]
    assert ex["csr_sector_bytes"] >= 32 * (5 + batch.num_edges)  # at least one sector per indptr pair and edge
    assert ex["interpreted"] is True and ex["plan"]["vector_bytes"] in (16, 8, 4)
    assert st.hit_rate() is None


@pytest.mark.interpret
def test_sector_estimate_for_unaligned_strides(interpret) -> None:
    graph = make_graph(num_nodes=64, feat_dim=3)  # 12-byte rows: the sector count depends on each row's address
    with _open(graph) as s:
        ids = torch.tensor([0, 1, 2, 5, 63])
        s.gather(ids)
        addr = graph.features.data_ptr()
        want = sum((((addr + 12 * int(i)) % 32 + 12 + 31) // 32) * 32 for i in ids)
        assert s.stats().extras["feature_sector_bytes"] == want


@pytest.mark.interpret
def test_close_is_idempotent_and_final(zc: ZeroCopy) -> None:
    zc.close()
    zc.close()
    with pytest.raises(RuntimeError, match="closed|prepare"):
        zc.gather(torch.arange(3))


# ---- counters follow the batches the caller receives ------------------------------------------------------------
def _wait_full(s: ZeroCopy) -> None:
    """Let the prefetch thread run as far ahead as it can (its queue full), so counting ahead would show."""
    deadline = time.monotonic() + 60
    while s._pipelines and not s._pipelines[0].queue.full():
        assert time.monotonic() < deadline, "the prefetch thread did not fill its queue"
        time.sleep(0.01)


@pytest.mark.interpret
@pytest.mark.parametrize("prefetch", [0, 2])
def test_stats_cover_exactly_the_batches_received_after_reset(interpret, small_graph, prefetch: int) -> None:
    """Finding #3: warm-up, reset_stats(), N measured batches, stats(): the same figures with and without prefetch,
    and equal to what those N batches needed, however far ahead the background thread is."""
    seeds = [torch.arange(i, i + 10) for i in range(0, 200, 10)]
    with _open(small_graph, prefetch=prefetch) as s:
        it = s.load(seeds, [4, 3], generator=torch.Generator().manual_seed(11))
        for _ in range(2):  # warm-up
            next(it)
        _wait_full(s)
        s.reset_stats()
        measured = [next(it) for _ in range(4)]
        _wait_full(s)
        st = s.stats()
        it.close()
    rows = sum(lb.batch.node_ids.numel() for lb in measured)
    csr = sum(16 * b.num_dst + small_graph.indices.element_size() * b.num_edges
              for lb in measured for b in lb.batch.blocks)
    feat = rows * small_graph.row_bytes
    assert st.rows == rows and st.bytes_needed == feat
    assert st.bytes_by_tier == {"h2d": feat + csr, "host": feat + csr}
    assert st.extras["csr_bytes"] == csr and st.extras["kernel_calls"] == 4
    assert st.extras["feature_sector_bytes"] >= feat
    want = sum(int(csr_sector_bytes([lb.batch.node_ids[:b.num_dst] for b in lb.batch.blocks],
                                    indptr_address=small_graph.indptr.data_ptr(), sampled_edges=lb.batch.num_edges))
               for lb in measured)
    assert st.extras["csr_sector_bytes"] == want and want >= 2 * csr  # sectors, not the 16 B / 4 B payload


@pytest.mark.interpret
def test_counts_of_batches_never_received_are_dropped(interpret, small_graph) -> None:
    with _open(small_graph, prefetch=3) as s:
        it = s.load([torch.arange(i, i + 5) for i in range(0, 100, 5)], [3], generator=torch.Generator())
        first = next(it)
        _wait_full(s)
        it.close()
        st = s.stats()
    assert st.rows == first.batch.node_ids.numel() and st.extras["kernel_calls"] == 1


# ---- the kernel is compiled in prepare, never in a measured step -------------------------------------------------
@pytest.mark.interpret
@pytest.mark.parametrize("sort_ids", [True, False])
def test_prepare_launches_the_gather_once_uncounted(interpret, small_graph, monkeypatch: pytest.MonkeyPatch,
                                                    sort_ids: bool) -> None:
    from accessbench.kernels.strategies.zero_copy import uva_gather as ug

    launches: list[tuple[int, bool]] = []
    real = ug.launch

    def spy(table, prepared, out, plan, **kw):
        launches.append((prepared.n, prepared.out_rows is not None))
        return real(table, prepared, out, plan, **kw)

    monkeypatch.setattr(ug, "launch", spy)
    with _open(small_graph, sort_ids=sort_ids) as s:
        assert launches == [(1, sort_ids)]  # the same permutation flag as every later launch
        st = s.stats()
        assert st.rows == 0 and st.bytes_by_tier == {} and st.extras["kernel_calls"] == 0
        ids = torch.randint(0, small_graph.num_nodes, (77,))
        assert torch.equal(s.gather(ids), small_graph.features[ids])
        assert launches[1] == (77, sort_ids) and s.stats().extras["kernel_calls"] == 1


# ---- what pinning does with each array (fake driver standing in for libcuda) -------------------------------------
@pytest.fixture
def fake_driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDriver]:
    from accessbench.kernels.strategies.zero_copy import pinning
    drv = FakeDriver()
    monkeypatch.setattr(pinning, "_cuda_driver", lambda: drv)
    yield drv
    pinning.release_all()


def _pinner(file_backed: str = "materialize") -> ZeroCopy:
    s = ZeroCopy(ZeroCopyOptions(file_backed=file_backed))  # type: ignore[arg-type]
    s.device = torch.device("cuda", 0)  # a label: the fake driver never touches CUDA
    s._setup = {"materialized_bytes": 0, "pinned_bytes": 0, "read_only_bytes": 0, "already_locked_bytes": 0,
                "page_copied_bytes": 0}
    return s


def test_arrays_sharing_a_page_are_copied_into_pages_of_their_own(fake_driver: FakeDriver) -> None:
    """Finding #2: small heap arrays next to each other must not be registered over a shared page."""
    raw = own_pages(3 * PAGE)
    indptr, indices = raw[:800].view(torch.int64), raw[800:2000].view(torch.int32)
    s = _pinner()
    a = s._pin(indptr, "indptr")
    b = s._pin(indices, "indices")
    assert a.tensor.data_ptr() == indptr.data_ptr()  # the first one stays in place
    assert b.tensor.data_ptr() != indices.data_ptr() and b.tensor.data_ptr() % PAGE == 0
    assert torch.equal(b.tensor, indices) and s._setup["page_copied_bytes"] == 1200
    assert len(fake_driver.live) == 2 and s._setup["pinned_bytes"] == 2000
    s._release()
    assert fake_driver.live == {}


def test_materialized_store_arrays_own_their_pages(fake_driver: FakeDriver, tiny_store) -> None:
    from accessbench.workloads.store import open_store

    g = open_store(tiny_store)
    s = _pinner()
    bufs = [s._pin(getattr(g, n), n) for n in ("features", "indptr", "indices")]
    for buf, name in zip(bufs, ("features", "indptr", "indices")):
        src = getattr(g, name)
        assert buf.tensor.data_ptr() % PAGE == 0 and torch.equal(buf.tensor, src)
        assert buf.owned_bytes == buf.nbytes == src.numel() * src.element_size()
    assert s._setup["materialized_bytes"] == sum(b.nbytes for b in bufs) and s._setup["page_copied_bytes"] == 0
    s._release()
    assert fake_driver.live == {}
