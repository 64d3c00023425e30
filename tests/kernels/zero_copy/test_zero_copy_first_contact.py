"""Issue 11 ("GPU first contact"), zero-copy side, on the CPU: the side stream's ordering, the tile cap, the CSR
sector estimate and the Triton-ptxas against driver check (with fakes; their device twins are in
test_zero_copy_gpu.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from accessbench.kernels.prefetch import BatchProducer
from accessbench.kernels.strategies.zero_copy import side_stream, toolchain
from accessbench.kernels.strategies.zero_copy.gather_plan import MAX_TILE_WORDS, csr_sector_bytes, plan_gather
from accessbench.kernels.strategies.zero_copy.strategy import ZeroCopyOptions


def test_side_stream_waits_for_the_callers_stream_before_the_thread_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    current = object()

    class Stream:
        def wait_stream(self, other: object) -> None:
            events.append("wait" if other is current else "wait on the wrong stream")

    def producer_init(self: BatchProducer, device, seeds, fanouts, generator, *, depth, stream, name) -> None:
        events.append("thread starts" if isinstance(stream, Stream) else "thread starts without the side stream")

    monkeypatch.setattr(BatchProducer, "__init__", producer_init)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)
    s = SimpleNamespace(device=torch.device("cuda", 0), _side=Stream())
    side_stream.SideStreamLoader(s, [], [2], torch.Generator(), depth=1)
    assert events == ["wait", "thread starts"]
    events.clear()
    side_stream.SideStreamLoader(SimpleNamespace(device=torch.device("cpu"), _side=None), [], [2], torch.Generator(),
                                 depth=1)
    assert events == ["thread starts without the side stream"]  # no stream on the CPU: nothing to wait for


@pytest.mark.parametrize("tile", [MAX_TILE_WORDS, MAX_TILE_WORDS * 2, 1 << 22])
@pytest.mark.parametrize(("row_bytes", "align"), [(4, 128), (4096 * 4, 128), (7, 4096)])
def test_tiles_are_capped_so_the_compile_cannot_fail(tile: int, row_bytes: int, align: int) -> None:
    p = plan_gather(base_address=0, row_bytes=row_bytes, row_stride=row_bytes, align_bytes=align, tile_words=tile)
    assert p.rows_per_tile * p.block_words <= MAX_TILE_WORDS


def test_tile_words_option_names_the_cap() -> None:
    assert ZeroCopyOptions(tile_words=MAX_TILE_WORDS).tile_words == MAX_TILE_WORDS
    with pytest.raises(ValueError, match=f"from 16 to {MAX_TILE_WORDS}.*compile"):
        ZeroCopyOptions(tile_words=MAX_TILE_WORDS * 2)


@pytest.mark.parametrize(("address", "want_indptr_sectors"), [(0, 5), (8, 5), (16, 5), (24, 5), (4096 + 16, 5)])
def test_csr_sector_arithmetic(address: int, want_indptr_sectors: int) -> None:
    """indptr[v], indptr[v+1] (16 B) take one 32-byte sector, or two where they straddle a boundary (one id in four
    on an 8-byte-aligned indptr); each sampled edge is one random read of at least one sector."""
    ids = torch.arange(4)
    got = csr_sector_bytes([ids], indptr_address=address, sampled_edges=7)
    assert int(got) == 32 * want_indptr_sectors + 32 * 7
    by_hand = sum(32 * (((address + 8 * v) % 32 + 16 + 31) // 32) for v in range(4))
    assert by_hand == 32 * want_indptr_sectors
    two_hops = csr_sector_bytes([ids, torch.tensor([3, 7, 11])], indptr_address=0, sampled_edges=10)
    assert int(two_hops) == 32 * 5 + 32 * 6 + 32 * 10  # ids 3, 7, 11 all straddle
    assert csr_sector_bytes([], indptr_address=0, sampled_edges=3) == 96
    assert csr_sector_bytes([torch.empty(0, dtype=torch.int64)], indptr_address=0, sampled_edges=0) == 0


def test_csr_sectors_exceed_the_payload_the_tiers_count() -> None:
    """The tiers count 16 B per frontier node and 4 B per int32 index; the link moves at least 32 B for each."""
    ids = torch.randint(0, 10**6, (1000,), generator=torch.Generator().manual_seed(0))
    edges = 10_000
    payload = 16 * ids.numel() + 4 * edges
    sectors = int(csr_sector_bytes([ids], indptr_address=0x7F00_0000_0000, sampled_edges=edges))
    assert 32 * (ids.numel() + edges) <= sectors <= 32 * (2 * ids.numel() + edges)
    assert sectors > 5 * payload


# ---- triton's ptxas against the driver (item 1) -------------------------------------------------------------------
def _tc(ptxas: tuple[int, int] | None, driver: tuple[int, int] | None, arch: int = 90) -> toolchain.Toolchain:
    return toolchain.Toolchain(arch=arch, ptxas_path="/t/bin/ptxas-blackwell", ptxas_env=toolchain._env_name(arch),
                               ptxas_cuda=ptxas, driver_cuda=driver)


def test_version_parsing() -> None:
    out = "ptxas: NVIDIA (R) Ptx optimizing assembler\nCuda compilation tools, release 13.4, V13.4.59\n"
    assert toolchain.parse_cuda_version(out) == (13, 4)
    assert toolchain.parse_cuda_version("nonsense") is None
    assert toolchain.driver_cuda(12040) == (12, 4) and toolchain.driver_cuda(13010) == (13, 1)
    assert toolchain.driver_cuda(0) is None
    assert toolchain.version_text((12, 10)) == "12.10" and toolchain.version_text(None) is None


@pytest.mark.parametrize(("ptxas", "driver", "refused"), [
    ((13, 4), (12, 8), True), ((12, 9), (12, 4), True), ((12, 4), (12, 4), False), ((12, 4), (13, 0), False),
    ((12, 10), (12, 9), True), ((12, 9), (12, 10), False), (None, (12, 4), False), ((13, 0), None, False)])
def test_ptxas_newer_than_the_driver_is_refused(ptxas, driver, refused: bool) -> None:
    assert (_tc(ptxas, driver).problem is not None) is refused


def test_the_message_says_what_to_do() -> None:
    msg = _tc((13, 4), (12, 8)).problem
    assert msg is not None
    for part in ("sm_90", "CUDA 13.4", "/t/bin/ptxas-blackwell", "CUDA 12.8", "device kernel image is invalid",
                 "triton that the installed torch", "TRITON_PTXAS_BLACKWELL_PATH", "update the driver"):
        assert part in msg, part
    assert "TRITON_PTXAS_PATH" in _tc((12, 9), (12, 4), arch=80).problem
    assert _tc((12, 4), (12, 8)).describe() == {"ptxas_cuda": "12.4", "driver_cuda": "12.8"}


def test_ptxas_is_found_the_way_triton_finds_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    triton = pytest.importorskip("triton")
    from triton.backends.nvidia.compiler import get_ptxas

    for arch in (80, 90):
        path, env = toolchain.find_ptxas(arch)
        assert path == get_ptxas(arch).path and env == ("TRITON_PTXAS_PATH" if arch < 90
                                                          else "TRITON_PTXAS_BLACKWELL_PATH")
        assert toolchain.ptxas_cuda_version(path) is not None  # the bundled binary runs on the CPU
    fake = tmp_path / "ptxas"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.2, V12.2.140'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TRITON_PTXAS_BLACKWELL_PATH", str(fake))
    assert toolchain.find_ptxas(90)[0] == str(fake)  # the override is honoured, as triton honours it
    assert toolchain.ptxas_cuda_version(str(fake)) == (12, 2)
    assert toolchain.check_toolchain(90).ptxas_cuda == (12, 2)
    assert triton is not None


def test_availability_and_prepare_refuse_a_driver_older_than_ptxas(monkeypatch: pytest.MonkeyPatch) -> None:
    from accessbench.kernels.errors import StrategyUnavailable
    from accessbench.kernels.strategies.zero_copy import strategy

    monkeypatch.setattr(strategy, "cuda_available", lambda: True)
    monkeypatch.setattr(strategy, "triton_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    seen: list[int] = []

    def check(arch: int) -> toolchain.Toolchain:
        seen.append(arch)
        return _tc((13, 4), (12, 4), arch)

    monkeypatch.setattr(strategy, "check_toolchain", check)
    ok, reason = strategy.ZeroCopy.availability()
    assert not ok and "CUDA 13.4" in reason and "CUDA 12.4" in reason and seen == [90]
    from tests.conftest import make_graph

    with pytest.raises(StrategyUnavailable, match="device kernel image is invalid"):
        strategy.ZeroCopy().prepare(make_graph(num_nodes=10, feat_dim=4), torch.device("cuda", 0))
    monkeypatch.setattr(strategy, "check_toolchain", lambda arch: _tc((12, 4), (12, 8), arch))
    assert strategy.ZeroCopy.availability() == (True, "available")
