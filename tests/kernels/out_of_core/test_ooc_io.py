"""The I/O building blocks: O_DIRECT reader, refusal on filesystems without O_DIRECT, page-cache control, counters,
the pipeline."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from accessbench.kernels import StrategyUnavailable
from accessbench.kernels.strategies.out_of_core.align import PAGE, aligned_empty
from accessbench.kernels.strategies.out_of_core.counters import IoCounter, kernel_io
from accessbench.kernels.strategies.out_of_core.direct import DirectFile
from accessbench.kernels.strategies.out_of_core.extents import plan_row_reads
from accessbench.kernels.strategies.out_of_core.pagecache import drop_file_pages, filesystem_of, resident_fraction
from accessbench.kernels.strategies.out_of_core.pipeline import Pipeline
from tests.kernels.out_of_core.ooc_support import require_odirect


def _file(directory: Path, nbytes: int = 40 * PAGE + 100) -> tuple[Path, bytes]:
    require_odirect(directory)
    data = os.urandom(nbytes)
    path = directory / "data.bin"
    path.write_bytes(data)
    return path, data


def test_direct_reads_return_the_file_bytes_with_many_in_flight(tmp_path: Path) -> None:
    path, data = _file(tmp_path)
    f = DirectFile(path, depth=8)
    ids = torch.tensor([0, 3, 4, 17, 39, 40])  # the last page is partial
    plan = plan_row_reads(ids, offset=0, row_stride=PAGE, row_bytes=100, max_io_bytes=PAGE)
    buf = aligned_empty(plan.total_bytes)
    got = f.read(plan, buf)
    assert got == plan.total_bytes - (PAGE - 100)  # end of file
    for i, pos in zip(ids.tolist(), plan.row_pos.tolist()):
        assert bytes(buf[pos:pos + 100].numpy()) == data[i * PAGE:i * PAGE + 100]
    assert f.counter.snapshot() == (got, plan.num_reads)
    f.close()
    f.close()


def test_direct_refuses_unaligned_buffers(tmp_path: Path) -> None:
    path, _ = _file(tmp_path)
    f = DirectFile(path)
    plan = plan_row_reads(torch.tensor([1]), offset=0, row_stride=PAGE, row_bytes=PAGE)
    with pytest.raises(ValueError, match="aligned"):
        f.read(plan, aligned_empty(2 * PAGE)[1:PAGE + 1])
    f.close()


def test_filesystem_without_odirect_is_named(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if filesystem_of(shm)[0] != "tmpfs" or not os.access(shm, os.W_OK):
        pytest.skip("no writable tmpfs at /dev/shm")
    path = shm / f"accessbench-odirect-{os.getpid()}.bin"
    path.write_bytes(b"\0" * 2 * PAGE)
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            os.close(fd)
            pytest.skip("this kernel's tmpfs accepts O_DIRECT")
        except OSError as exc:
            assert exc.errno == errno.EINVAL
        with pytest.raises(StrategyUnavailable, match="tmpfs.*io=mmap"):
            DirectFile(path)
    finally:
        path.unlink()


def test_einval_from_a_read_is_reported_as_unavailable_naming_the_filesystem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _file(tmp_path)

    def refuse(*args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "preadv", refuse)
    fstype = filesystem_of(path)[0]
    with pytest.raises(StrategyUnavailable, match=f"O_DIRECT is refused .* on the {fstype} filesystem"):
        DirectFile(path)


def test_drop_file_pages_empties_the_page_cache_for_the_file(tmp_path: Path) -> None:
    path, data = _file(tmp_path, 64 * PAGE)
    assert path.read_bytes() == data
    assert resident_fraction(path) == 1.0
    result = drop_file_pages(path)
    assert result.ok and result.resident_before == 1.0 and result.resident_after == 0.0
    assert result.as_dict()["method"] == "posix_fadvise(POSIX_FADV_DONTNEED)"


def test_counters() -> None:
    c = IoCounter()
    c.add(4096)
    c.add(8192, 3)
    assert c.snapshot() == (12288, 4)
    a, b = kernel_io(), kernel_io()
    assert (b - a).major_faults >= 0
    if a.read_bytes is None:
        assert a.reason


def test_pipeline_keeps_order_runs_stages_and_reraises() -> None:
    pipe = Pipeline(iter(range(10)), [lambda x: x * 2, lambda x: x + 1], depth=2)
    assert list(pipe) == [2 * i + 1 for i in range(10)]
    pipe.close()

    def failing() -> object:
        yield 1
        raise OSError("disk gone")

    pipe = Pipeline(failing(), [lambda x: x], depth=2)
    with pytest.raises(OSError, match="disk gone"):
        list(pipe)
    pipe.close()


def test_pipeline_stops_early_without_hanging() -> None:
    pipe = Pipeline(iter(range(1000)), [], depth=2)
    it = iter(pipe)
    assert next(it) == 0
    pipe.close()
