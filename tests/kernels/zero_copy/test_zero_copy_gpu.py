"""The ``zero-copy`` strategy and its kernel on a real GPU reading pinned host memory (skipped without CUDA).

Sampling: with the same seed, zero-copy's samples equal device-resident's (the same sampler on the same device
over the same CSR, read through UVA instead of device memory). They differ from the CPU sampler's for the same seed
(CPU and CUDA random streams differ), so against the CPU sampler the test checks the distribution (uniform
without replacement: per-neighbour and per-pair inclusion frequencies) and exact equality where no randomness is
involved (fanout -1).
"""

from __future__ import annotations

import time

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import InvalidIds
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.strategies.zero_copy import pinning
from accessbench.kernels.strategies.zero_copy.gather_plan import plan_gather
from accessbench.kernels.strategies.zero_copy.pinning import PinningError, pin_in_place
from accessbench.kernels.strategies.zero_copy.table import RowTable
from accessbench.kernels.types import GraphData
from tests.conftest import make_graph
from tests.kernels.zero_copy.helpers import placed_table, random_rows

pytestmark = pytest.mark.gpu


@pytest.fixture
def dev() -> torch.device:
    pytest.importorskip("triton")
    return torch.device("cuda", torch.cuda.current_device())


def _ids(n: int, count: int, seed: int) -> torch.Tensor:
    return torch.randint(0, n, (count,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int8])
@pytest.mark.parametrize("width", [1, 3, 17, 100, 129, 1024, 4096])
def test_gather_is_exact(dev, dtype: torch.dtype, width: int) -> None:
    graph = make_graph(num_nodes=2000 if width < 1024 else 300, feat_dim=width, dtype=dtype, seed=width)
    with registry.create("zero-copy") as s:
        s.prepare(graph, dev)
        for seed in range(3):
            ids = _ids(graph.num_nodes, 5000, seed)
            out = s.gather(ids)
            assert out.device == dev and out.dtype == dtype
            assert torch.equal(out.cpu(), graph.features[ids])
        assert s.stats().extras["kernel_gbps"] > 0


def test_gather_edge_cases(dev) -> None:
    graph = make_graph(num_nodes=500, feat_dim=33)
    with registry.create("zero-copy") as s:
        s.prepare(graph, dev)
        assert s.gather(torch.empty(0, dtype=torch.int64, device=dev)).shape == (0, 33)
        rev = torch.arange(499, -1, -1, device=dev)
        assert torch.equal(s.gather(rev).cpu(), graph.features[rev.cpu()])
        same = torch.full((1000,), 7)
        assert torch.equal(s.gather(same).cpu(), graph.features[same])
        for bad in (torch.tensor([500]), torch.tensor([-1]), torch.tensor([3, 2**40])):
            with pytest.raises(InvalidIds, match="valid"):
                s.gather(bad.to(dev))


@pytest.mark.parametrize(("offset", "pad", "dtype", "width", "vector"), [
    (0, 0, torch.float32, 64, 16), (8, 0, torch.float32, 64, 8), (4, 0, torch.float32, 64, 4),
    (2, 0, torch.float16, 64, 2), (1, 0, torch.float32, 64, 1), (3, 1, torch.float16, 9, 1),
    (12, 4, torch.bfloat16, 10, 4), (0, 8, torch.float32, 6, 8), (5, 0, torch.int8, 4096, 1),
])
@pytest.mark.parametrize("align", [1, 128])
def test_kernel_on_pinned_bytes_at_any_address(dev, offset, pad, dtype, width, vector, align) -> None:
    from accessbench.kernels.strategies.zero_copy.uva_gather import gather_rows

    n = 3000 if width < 4096 else 200
    rows = random_rows(n, width, dtype, seed=offset + pad)
    host, buf = placed_table(rows, offset=offset, pad=pad)
    with pin_in_place(buf, name="placed", device=dev) as pinned:
        start = host.address - buf.data_ptr()
        data = pinned.byte_view()[start: start + host.data.numel()]
        table = RowTable(data=data, num_rows=n, row_bytes=host.row_bytes, row_stride=host.row_stride, dtype=dtype)
        if pinned.device_address == buf.data_ptr():  # UVA maps host addresses 1:1 here
            plan = plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride)
            assert plan.vector_bytes == vector
        ids = _ids(n, 20_000 if width < 4096 else 500, offset).to(dev)
        for max_programs in (None, 1, 7):
            out = gather_rows(table, ids, align_bytes=align, max_programs=max_programs)
            assert torch.equal(out.cpu(), rows[ids.cpu()])
        unsorted = gather_rows(table, ids, sort=False, align_bytes=align)
        assert torch.equal(unsorted.cpu(), rows[ids.cpu()])
        torch.cuda.synchronize(dev)


def test_unchecked_out_of_range_ids_never_fault(dev) -> None:
    from accessbench.kernels.strategies.zero_copy.uva_gather import gather_rows

    rows = random_rows(100, 16, torch.float32)
    host, buf = placed_table(rows)
    with pin_in_place(buf, name="placed", device=dev) as pinned:
        start = host.address - buf.data_ptr()
        table = RowTable(pinned.byte_view()[start: start + host.data.numel()], 100, 64, 64, torch.float32)
        ids = torch.tensor([5, 2**40, -3, 99], device=dev)
        out = torch.full((4, 16), -1.0, device=dev)
        gather_rows(table, ids, out=out, check=False)
        torch.cuda.synchronize(dev)
        assert torch.equal(out[[0, 3]].cpu(), rows[[5, 99]]) and bool((out[[1, 2]] == -1).all())


def test_samples_equal_device_resident_for_the_same_seed(dev) -> None:
    graph = make_graph(num_nodes=3000, feat_dim=8, max_degree=40)
    seeds = _ids(3000, 512, 1)
    with registry.create("zero-copy") as z, registry.create("device-resident") as d:
        z.prepare(graph, dev)
        d.prepare(graph, dev)
        for fanouts in ([10, 5], [15, 10, 5], [-1]):
            a = z.sample(seeds, fanouts, generator=torch.Generator(device=dev).manual_seed(3))
            b = d.sample(seeds, fanouts, generator=torch.Generator(device=dev).manual_seed(3))
            assert torch.equal(a.node_ids, b.node_ids)
            for x, y in zip(a.blocks, b.blocks):
                assert torch.equal(x.edge_index, y.edge_index)
        full = z.sample(seeds, [-1, -1], generator=torch.Generator(device=dev))
        cpu = sample_blocks(graph.indptr, graph.indices, seeds, [-1, -1], torch.Generator())
        assert torch.equal(full.node_ids.cpu(), cpu.node_ids)  # no randomness: identical to the CPU sampler
        assert z.stats().extras["csr_bytes"] > 0


def _star_picks(sample, m: int, k: int) -> torch.Tensor:
    src = sample.blocks[0].edge_index[0]
    return (sample.node_ids[src] - m).view(m, k).cpu()


def _uniformity(picks: torch.Tensor, d: int) -> tuple[float, float, torch.Tensor]:
    m, k = picks.shape
    counts = torch.bincount(picks.flatten(), minlength=d).double()
    exp = m * k / d
    x = torch.zeros(m, d, dtype=torch.float64).scatter_(1, picks, 1.0)
    iu = torch.triu_indices(d, d, 1)
    pairs = (x.T @ x)[iu[0], iu[1]]
    exp_pair = m * k * (k - 1) / (d * (d - 1))
    return float(((counts - exp) ** 2 / exp).sum()), float(((pairs - exp_pair) ** 2 / exp_pair).sum()), counts


def test_sample_distribution_matches_the_cpu_sampler(dev) -> None:
    m, d, k = 4000, 20, 5  # m nodes share the same 20 neighbours; each draws 5 of them
    indptr = torch.zeros(m + d + 1, dtype=torch.int64)
    indptr[1: m + 1] = torch.arange(1, m + 1) * d
    indptr[m + 1:] = m * d
    graph = GraphData(m + d, indptr, (m + torch.arange(d)).repeat(m).to(torch.int32), torch.zeros(m + d, 1))
    seeds = torch.arange(m)
    with registry.create("zero-copy") as z:
        z.prepare(graph, dev)
        gpu = _star_picks(z.sample(seeds, [k], generator=torch.Generator(device=dev).manual_seed(0)), m, k)
    cpu = _star_picks(sample_blocks(graph.indptr, graph.indices, seeds, [k], torch.Generator().manual_seed(0)), m, k)
    for picks in (gpu, cpu):
        assert bool((picks.sort(1).values.diff(dim=1) > 0).all())  # without replacement
        single, pair, _ = _uniformity(picks, d)
        # chi-square statistics; the CPU sampler stays below 24 and 218 over 30 seeds (19 and 189 degrees of freedom)
        assert single < 50 and pair < 300
    a, b = _uniformity(gpu, d)[2], _uniformity(cpu, d)[2]
    assert float(((a - b) ** 2 / (a + b)).sum()) < 50  # homogeneity of the two samplers' inclusion counts


def test_load_pipeline_matches_sequential(dev) -> None:
    graph = make_graph(num_nodes=5000, feat_dim=64, max_degree=30)
    seeds = [torch.arange(i, i + 256) for i in range(0, 4096, 256)]

    def run(prefetch: int) -> list:
        with registry.create("zero-copy", prefetch=prefetch) as s:
            s.prepare(graph, dev)
            gen = torch.Generator(device=dev).manual_seed(9)
            out = []
            for lb in s.load(seeds, [10, 5], generator=gen):
                feats = lb.features * 1  # consumed on the main stream right away
                out.append((lb.batch.node_ids.cpu(), feats.cpu(), lb.overlapped, lb.phase_s))
            return out

    seq, pipe = run(0), run(2)
    assert len(seq) == len(pipe) == len(seeds)
    for (n1, f1, o1, _), (n2, f2, o2, ph) in zip(seq, pipe):
        assert torch.equal(n1, n2) and torch.equal(f1, f2) and torch.equal(f2, graph.features[n2])
        assert not o1 and o2 and ph["sample"] > 0 and ph["gather"] > 0


def test_mapped_store_policies(dev, tiny_store) -> None:
    from accessbench.workloads.store import open_store

    graph = open_store(tiny_store)
    ids = _ids(graph.num_nodes, 3000, 2)
    before = pinning.pinned_bytes()
    with registry.create("zero-copy") as s:  # default: materialize
        s.prepare(graph, dev)
        assert torch.equal(s.gather(ids).cpu(), graph.features[ids])
        ex = s.stats().extras
        assert ex["materialized_bytes"] >= graph.feature_bytes and ex["read_only_bytes"] == 0
    with registry.create("zero-copy", file_backed="error") as s:
        with pytest.raises(PinningError, match="file_backed=materialize"):
            s.prepare(graph, dev)
    with registry.create("zero-copy", file_backed="readonly") as s:
        try:
            s.prepare(graph, dev)
        except PinningError as exc:
            assert "READ_ONLY" in str(exc) or "read-only" in str(exc)
        else:
            assert torch.equal(s.gather(ids).cpu(), graph.features[ids])
            assert s.stats().extras["read_only_bytes"] >= graph.feature_bytes
            b = s.sample(torch.arange(64), [5, 5], generator=torch.Generator(device=dev))
            assert b.node_ids.numel() >= 64
    assert pinning.pinned_bytes() == before  # close unregistered everything


def test_already_pinned_and_padded_tables(dev) -> None:
    base = make_graph(num_nodes=1000, feat_dim=30)
    pinned = base.features.pin_memory()  # page-locked by torch already
    graph = GraphData(1000, base.indptr, base.indices, pinned)
    ids = _ids(1000, 4000, 3)
    with registry.create("zero-copy") as s:
        s.prepare(graph, dev)
        assert torch.equal(s.gather(ids).cpu(), base.features[ids])
        assert s.stats().extras["already_locked_bytes"] >= pinned.numel() * 4
    padded = torch.zeros(1000, 37)
    padded[:, :30] = base.features
    graph = GraphData(1000, base.indptr, base.indices, padded[:, :30])
    with registry.create("zero-copy", max_programs=4, sort_ids=False) as s:
        s.prepare(graph, dev)
        assert torch.equal(s.gather(ids).cpu(), base.features[ids])


def test_small_arrays_sharing_a_page_are_sampled_exactly(dev) -> None:
    """Finding #2: indptr and indices side by side in one page must not be registered over each other."""
    base = make_graph(num_nodes=200, feat_dim=8, max_degree=6)
    raw = pinning.aligned_empty(4 * pinning.page_size())
    nb_ptr, nb_idx = base.indptr.numel() * 8, base.indices.numel() * 4
    assert nb_ptr + nb_idx < raw.numel()
    indptr = raw[:nb_ptr].view(torch.int64).copy_(base.indptr)
    indices = raw[nb_ptr: nb_ptr + nb_idx].view(torch.int32).copy_(base.indices)
    graph = GraphData(200, indptr, indices, base.features)
    seeds = torch.arange(0, 200, 3)
    with registry.create("zero-copy") as s:
        s.prepare(graph, dev)
        assert s.stats().extras["page_copied_bytes"] > 0
        got = s.sample(seeds, [-1, -1], generator=torch.Generator(device=dev))
        want = sample_blocks(base.indptr, base.indices, seeds, [-1, -1], torch.Generator())
        torch.cuda.synchronize(dev)
        assert torch.equal(got.node_ids.cpu(), want.node_ids)
        ids = got.node_ids
        assert torch.equal(s.gather(ids).cpu(), base.features[ids.cpu()])


def test_already_registered_needs_full_coverage(dev) -> None:
    """The driver's CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED is accepted only where the existing registration
    (cuPointerGetAttribute RANGE_START_ADDR / RANGE_SIZE) covers the whole buffer."""
    page = pinning.page_size()
    drv = pinning._cuda_driver()
    raw = pinning.aligned_empty(8 * page)
    torch.cuda.synchronize(dev)  # the primary context is current for the direct driver calls below
    assert drv.register(raw.data_ptr(), 4 * page, pinning.FLAG_PORTABLE | pinning.FLAG_DEVICEMAP) == 0
    try:
        inside = raw[100: 3 * page]
        with pin_in_place(inside, name="inside", device=dev) as buf:
            assert buf.owned_bytes == 0
            assert torch.equal(buf.view().cpu(), inside)
        across = raw[2 * page: 6 * page]  # half registered: must be refused, never half pinned
        with pytest.raises(PinningError, match="cover only"):
            pin_in_place(across, name="across", device=dev)
    finally:
        assert drv.unregister(raw.data_ptr()) == 0


def test_stats_with_prefetch_equal_sequential(dev) -> None:
    """Finding #3 on the GPU, with 12-byte rows so the sector estimate is summed on the device."""
    graph = make_graph(num_nodes=3000, feat_dim=3, max_degree=20)
    seeds = [torch.arange(i, i + 128) for i in range(0, 2560, 128)]

    def run(prefetch: int) -> tuple:
        with registry.create("zero-copy", prefetch=prefetch) as s:
            s.prepare(graph, dev)
            it = s.load(seeds, [5, 5], generator=torch.Generator(device=dev).manual_seed(2))
            next(it), next(it)
            time.sleep(0.2)  # let the thread run ahead
            s.reset_stats()
            for _ in range(5):
                next(it)
            time.sleep(0.2)
            st = s.stats()
            it.close()
        return (st.rows, st.bytes_needed, st.bytes_by_tier, st.extras["feature_sector_bytes"],
                st.extras["kernel_calls"], st.extras["csr_sector_bytes"])  # CSR sectors summed on the device too

    assert run(0) == run(2)


def test_prepare_compiles_the_only_variant_gathers_use(dev) -> None:
    """Finding #7: after prepare, gathers of any size compile nothing more."""
    from accessbench.kernels.strategies.zero_copy import uva_gather as ug

    kernel = ug._kernel(False)
    graph = make_graph(num_nodes=4000, feat_dim=45, dtype=torch.float16)  # a plan no other test uses

    def compiled() -> int:
        return sum(len(entry[0]) for entry in kernel.device_caches.values())

    with registry.create("zero-copy") as s:
        s.prepare(graph, dev)
        after_prepare = compiled()
        for n in (1, 16, 1000, 33_333):
            ids = _ids(4000, n, n)
            assert torch.equal(s.gather(ids).cpu(), graph.features[ids])
        assert compiled() == after_prepare


def test_pin_memory_tensors_are_known_to_the_driver_and_used_in_place(dev) -> None:
    """Issue 11 item 2: a pin_memory() tensor is host memory the driver knows (asked before registering, whatever
    code a register would return: 712, 208 or 1), is classified cuda-pinned in /proc/self/maps, never copied."""
    t = torch.randn(5000, 33).pin_memory()
    drv = pinning._cuda_driver()
    torch.cuda.synchronize(dev)
    code, kind = drv.memory_type(t.data_ptr())
    assert (code, kind) == (0, pinning.MEMORYTYPE_HOST)
    backing = pinning.memory_backing(t.data_ptr(), t.numel() * 4)
    assert backing.kind in ("cuda-pinned", "anonymous") and not backing.needs_care, backing
    with pin_in_place(t, name="pinned", device=dev) as buf:
        assert buf.owned_bytes == 0 and torch.equal(buf.view().cpu(), t)
    plain = pinning.aligned_copy(torch.randn(100))
    assert drv.memory_type(plain.data_ptr())[0] != 0  # memory CUDA does not know is not "host" to it


def test_release_all_at_exit_from_a_fresh_thread(dev) -> None:
    """Issue 11 item 10: release_all works from a thread with no current context (as at interpreter exit)."""
    import threading

    t = pinning.aligned_copy(torch.randn(1000))
    pin_in_place(t, name="exit", device=dev)
    errors: list[list[str]] = []
    th = threading.Thread(target=lambda: errors.append(pinning.release_all()))
    th.start()
    th.join()
    assert errors == [[]] and pinning.pinned_bytes() == 0


def test_triton_ptxas_fits_the_driver_and_the_largest_tile_compiles(dev) -> None:
    """Issue 11 items 1 and 10: the driver accepts what triton's ptxas assembles for this arch (else prepare says
    what to do), and a gather planned with the largest tile compiles and is exact."""
    from accessbench.kernels.strategies.zero_copy import uva_gather
    from accessbench.kernels.strategies.zero_copy.gather_plan import MAX_TILE_WORDS
    from accessbench.kernels.strategies.zero_copy.toolchain import check_toolchain

    major, minor = torch.cuda.get_device_capability(dev)
    tc = check_toolchain(10 * major + minor)
    assert tc.ptxas_cuda is not None and tc.driver_cuda is not None, tc
    assert tc.problem is None, tc.problem
    rows = random_rows(3000, 300, torch.float32)
    table, _ = placed_table(rows, device="cpu")
    with pin_in_place(table.data, name="t", device=dev) as buf:
        t = RowTable(data=buf.byte_view(), num_rows=table.num_rows, row_bytes=table.row_bytes,
                     row_stride=table.row_stride, dtype=table.dtype)
        ids = _ids(3000, 5000, 9).to(dev)
        out = uva_gather.gather_rows(t, ids, tile_words=1 << 20)  # capped at MAX_TILE_WORDS, never a compile error
        assert torch.equal(out.cpu(), rows[ids.cpu()])
    assert MAX_TILE_WORDS >= 2048


def test_zero_copy_csr_sectors_against_nvml_rx(dev) -> None:
    """Issue 11 item 5: the sector estimate is of the order of what NVML counts into the GPU (RX) while sampling
    and gathering (NVML samples 20 ms in each 100 ms, so only the order of magnitude is compared)."""
    pytest.importorskip("pynvml")
    graph = make_graph(num_nodes=200_000, feat_dim=64, max_degree=30)
    with registry.create("zero-copy", prefetch=0) as s:
        s.prepare(graph, dev)
        g = torch.Generator(device=dev).manual_seed(0)
        s.reset_stats()
        for i in range(50):
            b = s.sample(torch.randint(0, 200_000, (1024,), device=dev, generator=g), [10, 10], generator=g)
            s.gather(b.node_ids)
        ex = s.stats().extras
        assert ex["csr_sector_bytes"] >= 2 * ex["csr_bytes"] and ex["pcie_read_bytes_est"] > 0
