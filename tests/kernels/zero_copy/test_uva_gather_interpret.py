"""The Triton gather kernel's logic on CPU tensors under ``TRITON_INTERPRET=1``.

The launcher picks the interpreter when ``TRITON_INTERPRET`` is set at call time (it builds its kernel lazily), so
the variable is set per test with ``monkeypatch`` and never leaks into other tests.
"""

from __future__ import annotations

import pytest
import torch

from accessbench.kernels.errors import InvalidIds
from accessbench.kernels.strategies.zero_copy import gather_rows_reference, plan_gather
from tests.kernels.zero_copy.helpers import placed_table, random_rows

pytest.importorskip("triton")
pytestmark = pytest.mark.interpret

from accessbench.kernels.strategies.zero_copy import uva_gather


@pytest.fixture(autouse=True)
def _interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _ids(n: int, count: int, seed: int) -> torch.Tensor:
    return torch.randint(0, n, (count,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("dtype", "width"), [
    (torch.float32, 1), (torch.float32, 3), (torch.float32, 17), (torch.float32, 100), (torch.float32, 1024),
    (torch.float16, 1), (torch.float16, 7), (torch.float16, 129), (torch.bfloat16, 5), (torch.bfloat16, 64),
    (torch.int8, 1), (torch.int8, 13), (torch.int8, 4096),
])
def test_widths_and_dtypes_are_exact(dtype: torch.dtype, width: int) -> None:
    n = 61
    rows = random_rows(n, width, dtype, seed=width)
    table, _ = placed_table(rows)
    ids = _ids(n, 40 if width >= 1024 else 150, width)
    assert ids.unique().numel() < ids.numel()  # duplicates, unsorted
    out = uva_gather.gather_rows(table, ids)
    assert out.dtype == dtype and out.shape == (ids.numel(), width)
    assert torch.equal(out, rows[ids])


def test_4096_wide_fp32_rows() -> None:
    rows = random_rows(9, 4096, torch.float32)
    table, _ = placed_table(rows, offset=4)
    ids = torch.tensor([8, 0, 3, 3, 7])
    assert torch.equal(uva_gather.gather_rows(table, ids), rows[ids])


@pytest.mark.parametrize(("offset", "pad", "dtype", "width", "vector"), [
    (0, 0, torch.float32, 64, 16),
    (8, 0, torch.float32, 64, 8),
    (4, 0, torch.float32, 64, 4),
    (2, 0, torch.float16, 64, 2),
    (1, 0, torch.float32, 64, 1),  # a float table at an odd address: moved byte by byte, still exact
    (3, 1, torch.float16, 9, 1),
    (0, 8, torch.float32, 6, 8),  # 24 B rows, 32 B stride
    (12, 4, torch.bfloat16, 10, 4),
    (6, 0, torch.int8, 48, 2),
])
def test_unaligned_bases_and_every_vector_width(offset, pad, dtype, width, vector) -> None:
    n = 50
    rows = random_rows(n, width, dtype, seed=offset * 7 + pad)
    table, _ = placed_table(rows, offset=offset, pad=pad)
    plan = plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride,
                       out_address=512)
    assert plan.vector_bytes == vector  # the buffer really is placed as the case says
    ids = _ids(n, 120, offset + pad)
    out = uva_gather.gather_rows(table, ids)
    assert torch.equal(out, rows[ids])
    for forced in [v for v in (16, 8, 4, 2, 1) if v <= vector]:
        assert torch.equal(uva_gather.gather_rows(table, ids, vector_bytes=forced), rows[ids])


@pytest.mark.parametrize("align", [1, 16, 64, 128, 256, 4096])
def test_alignment_masks(align: int) -> None:
    rows = random_rows(40, 37, torch.float32, seed=align)  # 148 B rows: heads vary from row to row
    table, _ = placed_table(rows, offset=20)
    ids = _ids(40, 100, align)
    assert torch.equal(uva_gather.gather_rows(table, ids, align_bytes=align), rows[ids])


def test_stores_stay_inside_the_output_rows() -> None:
    rows = random_rows(30, 21, torch.float16, seed=3)
    table, _ = placed_table(rows, offset=6, pad=2)
    ids = _ids(30, 64, 5)
    guard = 96  # elements of canary on both sides of the output
    backing = torch.full((guard + ids.numel() * 21 + guard,), 1234.0, dtype=torch.float16)
    out = backing[guard: guard + ids.numel() * 21].view(ids.numel(), 21)
    uva_gather.gather_rows(table, ids, out=out)
    assert torch.equal(out, rows[ids])
    assert bool((backing[:guard] == 1234.0).all()) and bool((backing[-guard:] == 1234.0).all())


@pytest.mark.parametrize("sort", [True, False])
@pytest.mark.parametrize("max_programs", [None, 1, 2, 3])
def test_program_cap_and_sort_keep_the_callers_order(sort: bool, max_programs: int | None) -> None:
    rows = random_rows(200, 8, torch.float32, seed=1)
    table, _ = placed_table(rows, offset=16)
    ids = torch.cat([torch.arange(199, -1, -1), torch.full((20,), 7), _ids(200, 200, 2)])
    out = uva_gather.gather_rows(table, ids, sort=sort, max_programs=max_programs, tile_words=64)
    assert torch.equal(out, rows[ids])


def test_empty_and_int32_ids() -> None:
    rows = random_rows(10, 5, torch.float32)
    table, _ = placed_table(rows)
    empty = uva_gather.gather_rows(table, torch.empty(0, dtype=torch.int64))
    assert empty.shape == (0, 5) and empty.dtype == torch.float32
    ids32 = torch.tensor([9, 0, 4], dtype=torch.int32)
    assert torch.equal(uva_gather.gather_rows(table, ids32), rows[ids32.long()])
    assert torch.equal(gather_rows_reference(table, ids32), rows[ids32.long()])


@pytest.mark.parametrize("sort", [True, False])
def test_out_of_range_ids_raise_before_launch(sort: bool) -> None:
    rows = random_rows(10, 5, torch.float32)
    table, _ = placed_table(rows)
    for bad, text in ((torch.tensor([3, 10]), "max 10"), (torch.tensor([-2, 4]), "min -2")):
        with pytest.raises(InvalidIds, match=rf"{text}.*valid \[0, 10\)"):
            uva_gather.gather_rows(table, bad, sort=sort)
    with pytest.raises(InvalidIds, match="integers"):
        uva_gather.gather_rows(table, torch.tensor([1.0]), sort=sort)


def test_unchecked_out_of_range_ids_are_skipped_not_read() -> None:
    rows = random_rows(10, 5, torch.float32)
    table, _ = placed_table(rows)
    ids = torch.tensor([2, 10_000_000, -5, 9])
    out = torch.full((4, 5), -7.0)
    uva_gather.gather_rows(table, ids, out=out, check=False)
    assert torch.equal(out[[0, 3]], rows[[2, 9]])
    assert bool((out[[1, 2]] == -7.0).all())


def test_cpu_tensors_need_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    rows = random_rows(4, 4, torch.float32)
    table, _ = placed_table(rows)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        uva_gather.gather_rows(table, torch.tensor([1]))


def test_bad_out_buffer() -> None:
    rows = random_rows(4, 4, torch.float32)
    table, _ = placed_table(rows)
    with pytest.raises(ValueError, match="out must be"):
        uva_gather.gather_rows(table, torch.tensor([1, 2]), out=torch.empty(2, 5))
