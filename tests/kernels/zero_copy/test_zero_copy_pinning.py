"""Pinning in place, with a fake driver standing in for libcuda: pieces, sharing, failures, release, messages."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from accessbench.kernels.strategies.zero_copy import pinning
from accessbench.kernels.strategies.zero_copy.pinning import Backing, PinningError, parse_maps, pin_in_place
from tests.kernels.zero_copy.helpers import PAGE, FakeDriver, own_pages

CUDA0 = torch.device("cuda", 0)  # only a label here: the fake driver never touches CUDA


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    leaked = pinning.pinned_bytes()
    pinning.release_all()
    assert leaked == 0, "a test left memory registered"


def test_pin_release_roundtrip() -> None:
    t = torch.randn(1000, 33)
    drv = FakeDriver()
    buf = pin_in_place(t, name="features", device=CUDA0, driver=drv)
    assert buf.nbytes == t.numel() * 4 and buf.device_address == t.data_ptr() and buf.owned_bytes == buf.nbytes
    assert pinning.pinned_bytes() == buf.nbytes
    flags = drv.calls[0][3]
    assert flags == pinning.FLAG_PORTABLE | pinning.FLAG_DEVICEMAP
    buf.release()
    buf.release()  # twice is fine
    assert drv.live == {} and pinning.pinned_bytes() == 0 and buf.released


def test_large_buffers_are_registered_in_page_aligned_pieces() -> None:
    t = torch.empty(10 * PAGE + 100, dtype=torch.uint8)[37:]  # an unaligned start
    drv = FakeDriver()
    with pin_in_place(t, name="big", device=CUDA0, driver=drv, chunk_bytes=4 * PAGE) as buf:
        pieces = buf.pieces
        assert len(pieces) >= 3
        assert pieces[0].address == t.data_ptr()
        assert sum(p.nbytes for p in pieces) == t.numel()
        for a, b in zip(pieces, pieces[1:]):
            assert a.address + a.nbytes == b.address and b.address % (4 * PAGE) == 0
        assert all(p.nbytes <= 4 * PAGE for p in pieces)
    assert drv.live == {}


def test_failure_part_way_unregisters_and_explains() -> None:
    t = torch.empty(9 * PAGE, dtype=torch.uint8)
    drv = FakeDriver(fail_piece=2)
    with pytest.raises(PinningError) as info:
        pin_in_place(t, name="features", device=CUDA0, driver=drv, chunk_bytes=2 * PAGE, hint="try option x")
    msg = str(info.value)
    assert "features" in msg and pinning.format_bytes(t.numel()) in msg
    assert "CUDA_ERROR_OUT_OF_MEMORY" in msg and "ulimit -l" in msg and pinning.memlock_limit_text() in msg
    assert "piece 3/" in msg and "try option x" in msg
    assert drv.live == {}  # the two pieces that succeeded were unregistered again
    assert pinning.pinned_bytes() == 0


def test_non_contiguous_device_mapping_is_refused() -> None:
    t = torch.empty(6 * PAGE, dtype=torch.uint8)
    drv = FakeDriver(scatter=True)
    with pytest.raises(PinningError, match="non-contiguous device addresses"):
        pin_in_place(t, name="f", device=CUDA0, driver=drv, chunk_bytes=2 * PAGE)
    assert drv.live == {}


def test_same_range_is_shared_and_overlaps_are_refused() -> None:
    t = torch.randn(4096)
    drv = FakeDriver()
    a = pin_in_place(t, name="a", device=CUDA0, driver=drv)
    b = pin_in_place(t, name="b", device=CUDA0, driver=drv)
    assert sum(c[0] == "register" for c in drv.calls) == 1
    with pytest.raises(PinningError, match="overlaps a"):
        pin_in_place(t[10:], name="c", device=CUDA0, driver=drv)
    with pytest.raises(PinningError, match="read_only"):
        pin_in_place(t, name="d", device=CUDA0, driver=drv, read_only=True)
    a.release()
    assert drv.live  # still used by b
    b.release()
    assert drv.live == {}


def test_memory_already_page_locked_is_used_but_not_unregistered() -> None:
    t = torch.randn(2048)
    drv = FakeDriver()
    drv.foreign(t.data_ptr() - 64, t.numel() * 4 + 128)  # e.g. a pin_memory() allocation holding the tensor
    buf = pin_in_place(t, name="pinned-elsewhere", device=CUDA0, driver=drv)
    assert buf.owned_bytes == 0 and buf.nbytes == t.numel() * 4 and buf.device_address == t.data_ptr()
    buf.release()
    assert not any(c[0] == "unregister" for c in drv.calls)


@pytest.mark.parametrize("ranges", [True, False])
def test_memory_covered_by_several_foreign_registrations_is_used(ranges: bool) -> None:
    """Coverage is read from the driver's range attributes, or page by page where it gives none."""
    t = own_pages(3 * PAGE)
    drv = FakeDriver(ranges=ranges)
    drv.foreign(t.data_ptr(), PAGE)
    drv.foreign(t.data_ptr() + PAGE, 2 * PAGE)
    with pin_in_place(t, name="two-ranges", device=CUDA0, driver=drv) as buf:
        assert buf.owned_bytes == 0
    assert len(drv.live) == 2


@pytest.mark.parametrize("ranges", [True, False])
def test_partly_registered_memory_is_refused_not_half_pinned(ranges: bool) -> None:
    """Finding: 712 on a range that only overlaps another registration must not pass as "already pinned"."""
    t = own_pages(3 * PAGE, offset=100)
    drv = FakeDriver(ranges=ranges)
    drv.foreign(t.data_ptr() - 100, 200)  # someone else pinned 200 bytes sharing t's first page
    with pytest.raises(PinningError) as info:
        pin_in_place(t, name="indices", device=CUDA0, driver=drv, hint="try option y")
    msg = str(info.value)
    assert "indices" in msg and "ALREADY_REGISTERED" in msg and "cover only its first" in msg
    assert "aligned_copy" in msg and "try option y" in msg
    assert list(drv.live) == [t.data_ptr() - 100]  # nothing of t was registered, nothing else was undone


def test_arrays_sharing_a_page_are_refused_and_aligned_copies_are_not() -> None:
    """Two small arrays next to each other share a page: the second registration would overlap the first."""
    raw = own_pages(2 * PAGE)
    a, b = raw[:1000], raw[1000:3000]
    drv = FakeDriver()
    with pin_in_place(a, name="indptr", device=CUDA0, driver=drv):
        assert pinning.page_neighbour(b) == "indptr" and pinning.page_neighbour(a) is None
        with pytest.raises(PinningError, match="shares a memory page with indptr.*aligned_copy"):
            pin_in_place(b, name="indices", device=CUDA0, driver=drv)
        c = pinning.aligned_copy(b)
        assert torch.equal(c, b) and c.data_ptr() % PAGE == 0 and pinning.page_neighbour(c) is None
        with pin_in_place(c, name="indices", device=CUDA0, driver=drv) as buf:
            assert buf.owned_bytes == buf.nbytes == 2000
        assert sum(1 for call in drv.calls if call[0] == "register") == 2  # b never reached the driver
    assert drv.live == {}


@pytest.mark.parametrize(("nbytes", "dtype", "shape"), [(12, torch.float32, (3,)), (PAGE, torch.int64, (PAGE // 8,)),
                                                       (3 * PAGE + 6, torch.float16, (3 * PAGE // 2 + 3,))])
def test_aligned_buffers_own_their_pages(nbytes: int, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    src = torch.arange(torch.Size(shape).numel()).to(dtype).view(shape)
    copies = [pinning.aligned_copy(src) for _ in range(4)]
    spans = []
    for c in copies:
        assert c.dtype == dtype and c.shape == src.shape and torch.equal(c, src) and c.data_ptr() % PAGE == 0
        lo, hi = pinning.page_span(c.data_ptr(), nbytes)
        base = c.untyped_storage().data_ptr()
        assert base <= lo and hi <= base + c.untyped_storage().nbytes()  # every page it touches is its own
        spans.append((lo, hi))
    spans.sort()
    assert all(x[1] <= y[0] for x, y in zip(spans, spans[1:]))
    assert pinning.aligned_empty(5).numel() == 5 and pinning.aligned_copy(torch.empty(0, 4)).shape == (0, 4)


def test_read_only_registration() -> None:
    t = torch.randn(100)
    drv = FakeDriver()
    with pin_in_place(t, name="ro", device=CUDA0, driver=drv, read_only=True) as buf:
        assert buf.read_only and drv.calls[0][3] & pinning.FLAG_READ_ONLY
    with pytest.raises(PinningError, match="READ_ONLY_HOST_REGISTER_SUPPORTED"):
        pin_in_place(t, name="ro", device=CUDA0, driver=FakeDriver(read_only=False), read_only=True)


def test_release_all_unregisters_everything() -> None:
    drv = FakeDriver()
    keep = [pinning.aligned_copy(torch.randn(100)), pinning.aligned_copy(torch.randn(300))]
    for i, t in enumerate(keep):
        pin_in_place(t, name=f"t{i}", device=CUDA0, driver=drv)
    assert len(drv.live) == 2
    assert pinning.release_all() == []
    assert drv.live == {} and pinning.pinned_bytes() == 0


def test_argument_checks() -> None:
    drv = FakeDriver()
    empty = pin_in_place(torch.empty(0), name="e", device=CUDA0, driver=drv)
    assert empty.nbytes == 0 and drv.calls == []
    with pytest.raises(PinningError, match="only host"):
        pin_in_place(torch.empty(4, device="meta"), name="m", device=CUDA0, driver=drv)
    with pytest.raises(ValueError, match="page size"):
        pin_in_place(torch.randn(4), name="x", device=CUDA0, driver=drv, chunk_bytes=PAGE + 1)
    assert pinning.span_bytes(torch.zeros(10, 8)[:, :3]) == (9 * 8 + 3) * 4


def test_memory_backing_of_anonymous_and_mapped_arrays(tmp_path) -> None:
    t = torch.randn(4096)
    assert pinning.memory_backing(t.data_ptr(), t.numel() * 4).kind == "anonymous"
    path = tmp_path / "rows.bin"
    path.write_bytes(bytes(3 * PAGE))
    cow = np.memmap(path, dtype="u1", mode="c")
    b = pinning.memory_backing(cow.ctypes.data, cow.size)
    assert (b.kind, b.path, b.writable, b.needs_care) == ("file-private", str(path), True, True)
    ro = np.memmap(path, dtype="u1", mode="r")
    b = pinning.memory_backing(ro.ctypes.data, ro.size)
    assert b.kind == "file-shared" and not b.writable and b.needs_care
    rw = np.memmap(path, dtype="u1", mode="r+")
    assert not pinning.memory_backing(rw.ctypes.data, rw.size).needs_care
    del cow, ro, rw


def test_parse_maps() -> None:
    text = ("7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
            "7f0000001000-7f0000003000 r--p 00000000 08:01 1234 /data/feat.bin\n"
            "7f0000003000-7f0000004000 rw-p 00000000 00:00 0 [heap]\n")
    assert parse_maps(text, 0x7F0000000000, 0x800) == Backing("anonymous", "", True)
    assert parse_maps(text, 0x7F0000000800, 0x1000) == Backing("file-private", "/data/feat.bin", False)
    assert parse_maps(text, 0x7F0000003000, 16).kind == "anonymous"
    assert parse_maps(text, 0x100, 16).kind == "unknown"


def test_format_bytes() -> None:
    assert pinning.format_bytes(512) == "512 B"
    assert pinning.format_bytes(1536) == "1.50 KiB"
    assert pinning.format_bytes(3 * 2**30) == "3.00 GiB"


@pytest.mark.parametrize(("dtype", "shape", "cols"), [(torch.float32, (50, 7), 7), (torch.bfloat16, (40, 16), 9),
                                                        (torch.int32, (1000,), None)])
def test_view_reinterprets_the_pinned_bytes(monkeypatch: pytest.MonkeyPatch, dtype, shape, cols) -> None:
    """``view()`` rebuilds the source's dtype, shape and strides over the bytes the UVA reader returns (a CPU
    stand-in here, holding different values from the source, so the result can only have come through the reader)."""
    from accessbench.kernels.strategies.zero_copy.table import byte_view

    def table(seed: int) -> torch.Tensor:
        src = (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 100).to(dtype)
        return src[:, :cols] if cols is not None and cols < shape[1] else src

    t, mirror = table(0), table(1)  # same layout, other values: what "the device" sees through the mapping
    assert not torch.equal(mirror, t)
    reads: list[tuple[int, int, torch.device]] = []

    def uva_bytes(addr: int, n: int, dev: torch.device, *, owner: object) -> torch.Tensor:
        reads.append((addr, n, dev))
        return byte_view(mirror, n)

    monkeypatch.setattr(pinning, "_uva_bytes", uva_bytes)
    with pin_in_place(t, name="v", device=CUDA0, driver=FakeDriver()) as buf:
        v = buf.view()
        assert v.dtype == dtype and v.shape == t.shape and v.stride() == t.stride()
        assert torch.equal(v, mirror) and v.data_ptr() == mirror.data_ptr()
        raw = buf.byte_view()
        assert raw.numel() == pinning.span_bytes(t) and raw.data_ptr() == mirror.data_ptr()
    assert reads == [(t.data_ptr(), pinning.span_bytes(t), CUDA0)] * 2  # the pinned range, mapped for the device


@pytest.mark.parametrize("already", [pinning.CUDA_ERROR_ALREADY_REGISTERED, pinning.CUDA_ERROR_ALREADY_MAPPED,
                                     pinning.CUDA_ERROR_INVALID_VALUE])
@pytest.mark.parametrize("knows_host", [True, False])
def test_memory_pinned_by_cuda_is_recognised_whatever_the_driver_answers(already: int, knows_host: bool) -> None:
    """pin_memory()/cudaHostAlloc memory: asked first (memory type = host), else recognised from 712, 208 or 1."""
    t = own_pages(2 * PAGE)
    drv = FakeDriver(already=already, knows_host=knows_host)
    drv.foreign(t.data_ptr(), 2 * PAGE)  # e.g. a pin_memory() allocation
    if already == pinning.CUDA_ERROR_INVALID_VALUE and not knows_host:
        with pytest.raises(PinningError, match="INVALID_VALUE.*page-locked elsewhere.*aligned_copy"):
            pin_in_place(t, name="features", device=CUDA0, driver=drv)  # nothing says it is CUDA's: a real error
        return
    with pin_in_place(t, name="features", device=CUDA0, driver=drv) as buf:
        assert buf.owned_bytes == 0 and buf.nbytes == 2 * PAGE and buf.device_address == t.data_ptr()
    registers = sum(c[0] == "register" for c in drv.calls)
    assert registers == (0 if knows_host else 1) and drv.type_queries >= 1
    assert not any(c[0] == "unregister" for c in drv.calls) and len(drv.live) == 1


@pytest.mark.parametrize("already", [pinning.CUDA_ERROR_ALREADY_MAPPED, pinning.CUDA_ERROR_ALREADY_REGISTERED])
def test_partly_pinned_memory_is_refused_whatever_the_code(already: int) -> None:
    t = own_pages(3 * PAGE)
    drv = FakeDriver(already=already, knows_host=False)
    drv.foreign(t.data_ptr() + PAGE, PAGE)  # the middle page only
    with pytest.raises(PinningError, match="partly page-locked already"):
        pin_in_place(t, name="indices", device=CUDA0, driver=drv)
    assert list(drv.live) == [t.data_ptr() + PAGE]


def test_release_all_synchronises_in_the_primary_context_before_unregistering(monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    """At interpreter exit the thread may have no current context: select the device, synchronise, unregister."""
    events: list[str] = []
    drv = FakeDriver()
    real_unregister = drv.unregister

    def unregister(address: int) -> int:
        events.append("unregister")
        return real_unregister(address)

    class _Device:
        def __init__(self, device: torch.device) -> None:
            events.append(f"device {device}")

        def __enter__(self) -> None:
            events.append("enter")

        def __exit__(self, *exc: object) -> None:
            events.append("exit")

    t = pinning.aligned_copy(torch.randn(100))
    pin_in_place(t, name="f", device=CUDA0, driver=drv)
    monkeypatch.setattr(drv, "unregister", unregister)
    monkeypatch.setattr(pinning, "_is_real", lambda d: True)
    monkeypatch.setattr(torch.cuda, "device", _Device)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append(f"sync {device}"))
    assert pinning.release_all() == []
    assert events == ["device cuda:0", "enter", "sync cuda:0", "unregister", "exit"]


def test_parse_maps_treats_nvidia_device_mappings_as_cuda_pinned() -> None:
    """pin_memory()/cudaHostAlloc memory is a mapping of /dev/nvidia*: pinned already, not a file to copy."""
    text = ("7f0000000000-7f0000200000 rw-s 00000000 00:05 1000 /dev/nvidiactl\n"
            "7f0000200000-7f0000400000 rw-s 00000000 00:05 1001 /dev/nvidia0\n"
            "7f0000400000-7f0000401000 rw-p 00000000 00:00 0 \n")
    b = parse_maps(text, 0x7F0000000100, 0x1000)
    assert (b.kind, b.path, b.writable, b.needs_care) == ("cuda-pinned", "/dev/nvidiactl", True, False)
    assert parse_maps(text, 0x7F00001FF000, 0x2000).kind == "cuda-pinned"
    assert parse_maps(text, 0x7F00003FF000, 0x2000).kind == "cuda-pinned"  # partly anonymous: still CUDA's
