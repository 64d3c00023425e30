"""The gather's layout rules as pure functions: vector width, alignment heads, tiles, and the lane emulation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from accessbench.kernels.errors import InvalidIds
from accessbench.kernels.strategies.zero_copy import (
    VECTOR_BYTES,
    RowTable,
    byte_view,
    emulate_plan,
    gather_rows_reference,
    plan_gather,
    sector_bytes_per_row,
    widest_vector_bytes,
)
from tests.kernels.zero_copy.helpers import placed_table, random_rows


@pytest.mark.parametrize(
    ("base", "stride", "row", "out", "expected"),
    [
        (0x1000, 512, 512, 0, 16),  # everything 16-aligned
        (0x1008, 512, 512, 0, 8),  # base only 8-aligned
        (0x1000, 100, 100, 0, 4),  # fp32 x 25: rows 4-aligned
        (0x1000, 6, 6, 0, 2),  # fp16 x 3
        (0x1001, 512, 512, 0, 1),  # odd base
        (0x1000, 24, 20, 0, 4),  # padded stride, row of 20 B
        (0x1000, 512, 512, 0x104, 4),  # the output limits the width too
        (0x1000, 7, 7, 0, 1),  # int8 x 7
    ],
)
def test_widest_vector_bytes(base: int, stride: int, row: int, out: int, expected: int) -> None:
    assert widest_vector_bytes(base_address=base, row_stride=stride, row_bytes=row, out_address=out) == expected


@given(base=st.integers(0, 2**40), stride_mult=st.integers(1, 64), row=st.integers(1, 4096), out=st.integers(0, 2**20))
@settings(max_examples=200, deadline=None)
def test_widest_vector_divides_every_address(base: int, stride_mult: int, row: int, out: int) -> None:
    stride = row + stride_mult - 1
    v = widest_vector_bytes(base_address=base, row_stride=stride, row_bytes=row, out_address=out)
    assert v in VECTOR_BYTES
    assert base % v == stride % v == row % v == out % v == 0
    wider = 2 * v
    assert v == 16 or any(x % wider for x in (base, stride, row, out))


def test_plan_rejects_bad_arguments() -> None:
    ok = dict(base_address=0x1000, row_bytes=64, row_stride=64)
    with pytest.raises(ValueError, match="valid: 8, 4, 2, 1"):
        plan_gather(**{**ok, "base_address": 0x1008}, vector_bytes=16)
    with pytest.raises(ValueError, match="power of two"):
        plan_gather(**ok, align_bytes=100)
    with pytest.raises(ValueError, match="row_stride"):
        plan_gather(base_address=0, row_bytes=64, row_stride=32)
    with pytest.raises(ValueError, match="row_bytes"):
        plan_gather(base_address=0, row_bytes=0, row_stride=32)
    with pytest.raises(ValueError, match="tile_words"):
        plan_gather(**ok, tile_words=100)


def test_plan_forced_narrower_vector() -> None:
    p = plan_gather(base_address=0x1000, row_bytes=512, row_stride=512, vector_bytes=4)
    assert (p.vector_bytes, p.word_bytes, p.vec_words) == (4, 4, 1)
    p = plan_gather(base_address=0x1000, row_bytes=512, row_stride=512)
    assert (p.vector_bytes, p.word_bytes, p.vec_words) == (16, 4, 4)


def test_aligned_rows_have_no_head() -> None:
    # 512 B rows from a 128-aligned base: every row starts on a boundary, one chunk per row, no masked lanes
    p = plan_gather(base_address=0x10000, row_bytes=512, row_stride=512)
    assert p.max_head_vecs == 0 and p.chunks * p.block_words == p.row_words
    assert p.lane_efficiency == 1.0


def test_align_one_disables_heads() -> None:
    p = plan_gather(base_address=0x1004, row_bytes=100, row_stride=100, align_bytes=1)
    assert p.align_bytes == p.vector_bytes == 4 and p.max_head_vecs == 0


@given(
    base=st.integers(0, 2**20),
    row=st.integers(1, 5000),
    pad=st.integers(0, 40),
    align=st.sampled_from([1, 16, 128, 256]),
    tile=st.sampled_from([64, 2048]),
)
@settings(max_examples=300, deadline=None)
def test_plan_invariants(base: int, row: int, pad: int, align: int, tile: int) -> None:
    p = plan_gather(base_address=base, row_bytes=row, row_stride=row + pad, align_bytes=align, tile_words=tile)
    assert p.block_words & (p.block_words - 1) == 0 and p.rows_per_tile & (p.rows_per_tile - 1) == 0
    assert p.block_words * p.word_bytes >= p.align_bytes  # every chunk starts on an alignment boundary
    assert p.chunks * p.block_words >= p.span_words  # the worst-placed row is covered
    assert (p.chunks - 1) * p.block_words < p.span_words  # and no chunk is always empty
    assert p.rows_per_tile * p.block_words == max(tile, p.block_words)
    heads = {p.head_vecs(i) for i in range(64)}
    assert max(heads) <= p.max_head_vecs


def _table_bytes(n: int, width: int, dtype: torch.dtype, offset: int, pad: int) -> tuple[RowTable, torch.Tensor]:
    rows = random_rows(n, width, dtype, seed=width + offset)
    table, _ = placed_table(rows, offset=offset, pad=pad)
    return table, rows


@pytest.mark.parametrize(("dtype", "width", "offset", "pad"), [
    (torch.float32, 1, 0, 0), (torch.float32, 33, 4, 0), (torch.float16, 7, 2, 2), (torch.bfloat16, 64, 0, 6),
    (torch.int8, 5, 1, 3), (torch.float32, 128, 8, 0), (torch.float32, 300, 16, 16),
])
@pytest.mark.parametrize("align", [1, 128, 256])
@pytest.mark.parametrize("sort", [True, False])
def test_emulated_lanes_read_each_payload_byte_once(dtype, width, offset, pad, align, sort) -> None:
    table, rows = _table_bytes(97, width, dtype, offset, pad)
    ids = torch.randint(0, 97, (150,), generator=torch.Generator().manual_seed(width))
    plan = plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride,
                       align_bytes=align, tile_words=256)
    trace = emulate_plan(table, ids, plan, sort=sort)
    assert torch.equal(trace.out, rows[ids])
    assert torch.equal(gather_rows_reference(table, ids), rows[ids])
    # the first access of every row is on an alignment boundary (absolute address)
    assert bool(((trace.first_access + table.address) % plan.align_bytes == 0).all())
    # active lanes cover exactly the row's bytes, once each, and nothing outside it
    starts = trace.load_ids * table.row_stride
    active_offsets = torch.where(trace.active, trace.read_offsets, torch.full_like(trace.read_offsets, -1))
    for k in range(0, ids.numel(), 17):
        got = active_offsets[k][active_offsets[k] >= 0]
        want = torch.arange(int(starts[k]), int(starts[k]) + table.row_bytes, plan.word_bytes)
        assert torch.equal(got, want)
    # masked lanes before the row are fewer than one alignment unit
    first_active = trace.active.int().argmax(1)
    assert bool((first_active * plan.word_bytes < plan.align_bytes).all())
    if sort:
        assert bool((trace.load_ids[1:] >= trace.load_ids[:-1]).all())
        assert torch.equal(ids[trace.out_rows], trace.load_ids)


def test_reference_rejects_bad_ids() -> None:
    table, _ = _table_bytes(10, 4, torch.float32, 0, 0)
    with pytest.raises(InvalidIds, match=r"max 10, valid \[0, 10\)"):
        gather_rows_reference(table, torch.tensor([1, 10]))
    with pytest.raises(InvalidIds, match="min -1"):
        gather_rows_reference(table, torch.tensor([-1]))
    with pytest.raises(InvalidIds, match="integers"):
        gather_rows_reference(table, torch.tensor([0.0]))
    with pytest.raises(InvalidIds, match="1-D"):
        gather_rows_reference(table, torch.zeros(2, 2, dtype=torch.int64))


def test_sector_bytes_per_row() -> None:
    assert sector_bytes_per_row(start_address=0, row_bytes=4) == 32
    assert sector_bytes_per_row(start_address=30, row_bytes=4) == 64
    assert sector_bytes_per_row(start_address=64, row_bytes=512) == 512
    assert sector_bytes_per_row(start_address=65, row_bytes=512) == 544


def test_row_table_from_tensor_and_byte_view() -> None:
    base = random_rows(20, 12, torch.float16)
    padded = torch.zeros(20, 16, dtype=torch.float16)
    padded[:, :12] = base
    view = padded[:, :12]
    t = RowTable.from_tensor(view)
    assert (t.row_bytes, t.row_stride, t.row_elems, t.num_rows) == (24, 32, 12, 20)
    assert t.address == view.data_ptr()
    assert torch.equal(gather_rows_reference(t, torch.tensor([3, 19, 0])), base[[3, 19, 0]])
    raw = byte_view(view[5:])
    assert raw.data_ptr() == view[5:].data_ptr() and raw.dtype == torch.uint8
    with pytest.raises(ValueError, match="overlap"):
        RowTable.from_tensor(torch.zeros(1, 8).expand(4, 8))
    with pytest.raises(ValueError, match="contiguous"):
        RowTable.from_tensor(torch.zeros(8, 4).t())
    with pytest.raises(ValueError, match="holds"):
        RowTable(data=torch.zeros(10, dtype=torch.uint8), num_rows=3, row_bytes=4, row_stride=4, dtype=torch.float32)
    with pytest.raises(ValueError, match="whole number"):
        RowTable(data=torch.zeros(12, dtype=torch.uint8), num_rows=2, row_bytes=6, row_stride=6, dtype=torch.float32)
