"""Out-of-core on a CUDA device: device and pinned host tiers, the copy stage, kvikio where present."""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels import create
from accessbench.kernels.strategies.out_of_core.kvikio_io import kvikio_status
from accessbench.kernels.types import GraphData
from tests.kernels.out_of_core.ooc_support import make_store, reference_features

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[GraphData, torch.Tensor]:
    g = make_store(tmp_path_factory.mktemp("ooc-gpu"), num_nodes=4000, feat_dim=96)
    return g, reference_features(g)


@pytest.mark.parametrize("layout", ["rowwise", "packed"])
@pytest.mark.parametrize("pipeline", [True, False])
@pytest.mark.parametrize("io", ["direct", "mmap"])
def test_device_and_pinned_tiers_are_exact(store: tuple[GraphData, torch.Tensor], io: str, layout: str,
                                           pipeline: bool) -> None:
    g, ref = store
    dev = torch.device("cuda")
    seeds = [torch.randint(0, g.num_nodes, (64,), generator=torch.Generator().manual_seed(i)) for i in range(5)]
    with create("out-of-core", io=io, layout=layout, pipeline=pipeline, superbatch=2, device_cache_bytes=96 << 10,
                host_cache_bytes=96 << 10, lookahead_bytes=64 << 10) as s:
        s.prepare(g, dev)
        assert s.stats().extras["host_cache_memory"] == "pinned"
        for lb in s.load(seeds, [5, 3], generator=torch.Generator().manual_seed(0)):
            assert lb.features.device.type == "cuda" and lb.batch.node_ids.device.type == "cuda"
            assert torch.equal(lb.features.cpu(), ref[lb.batch.node_ids.cpu()])
            assert "transfer" in lb.phase_s
        ids = torch.randint(0, g.num_nodes, (3000,), generator=torch.Generator().manual_seed(9))
        assert torch.equal(s.gather(ids).cpu(), ref[ids])
        st = s.stats()
        assert st.hits["device"] > 0 and st.hits["host"] > 0 and st.bytes_by_tier["h2d"] > 0


def test_kvikio_reads_are_exact_where_present(store: tuple[GraphData, torch.Tensor]) -> None:
    ok, reason = kvikio_status(True)
    if not ok:
        pytest.skip(reason)
    g, ref = store
    with create("out-of-core", io="kvikio", kvikio_compat=True, layout="packed", device_cache_bytes=64 << 10,
                lookahead_bytes=64 << 10, superbatch=2) as s:
        s.prepare(g, torch.device("cuda"))
        seeds = [torch.randint(0, g.num_nodes, (64,), generator=torch.Generator().manual_seed(i)) for i in range(4)]
        for lb in s.load(seeds, [5, 3], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features.cpu(), ref[lb.batch.node_ids.cpu()])
        ids = torch.randint(0, g.num_nodes, (2000,), generator=torch.Generator().manual_seed(1))
        assert torch.equal(s.gather(ids).cpu(), ref[ids])


@pytest.mark.parametrize("layout", ["rowwise", "packed"])
def test_kvikio_buffer_is_not_refilled_under_queued_readers(store: tuple[GraphData, torch.Tensor], layout: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read queues a spin kernel before the copies out of the read buffer, so they run long after the read;
    several chunks per batch (small read buffer) and no CRC sync: a refill that does not wait corrupts rows."""
    ok, reason = kvikio_status(True)
    if not ok:
        pytest.skip(reason)
    from accessbench.kernels.strategies.out_of_core import sources

    read = sources._Timed._read

    def slow_readers(self: sources._Timed, plan: object) -> torch.Tensor:
        buf = read(self, plan)  # type: ignore[arg-type]
        torch.cuda._sleep(5_000_000)  # milliseconds of queued work ahead of the kernels that read ``buf``
        return buf

    monkeypatch.setattr(sources._Timed, "_read", slow_readers)
    g, ref = store
    with create("out-of-core", io="kvikio", kvikio_compat=True, layout=layout, verify_packed=False,
                read_buffer_bytes=64 << 10, max_io_bytes=16 << 10, superbatch=3) as s:
        s.prepare(g, torch.device("cuda"))
        seeds = [torch.randint(0, g.num_nodes, (256,), generator=torch.Generator().manual_seed(i)) for i in range(3)]
        for lb in s.load(seeds, [5, 3], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features.cpu(), ref[lb.batch.node_ids.cpu()])
        ids = torch.randint(0, g.num_nodes, (1000,), generator=torch.Generator().manual_seed(2))
        assert torch.equal(s.gather(ids).cpu(), ref[ids])
