"""Issue 11 ("GPU first contact"), zero-copy side, on the CPU: the side stream's ordering, the tile cap, the CSR
sector estimate and the Triton-ptxas against driver check (with fakes; their device twins are in
test_zero_copy_gpu.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accessbench.kernels.prefetch import BatchProducer
from accessbench.kernels.strategies.zero_copy import side_stream
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
