"""Read planning and amplification arithmetic on known layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels import create
from accessbench.kernels.strategies.out_of_core.align import PAGE, aligned_empty
from accessbench.kernels.strategies.out_of_core.extents import plan_row_reads, plan_span_reads, rows_from_buffer
from tests.kernels.out_of_core.ooc_support import make_store, padded_graph, reference_features


def test_512_byte_rows_on_separate_pages_read_one_page_each() -> None:
    ids = torch.tensor([0, 16, 40, 160])  # 512 B rows: 8 per page, so these sit on pages 0, 2, 5, 20
    plan = plan_row_reads(ids, offset=0, row_stride=512, row_bytes=512)
    assert plan.total_bytes == 4 * PAGE
    assert plan.total_bytes / (ids.numel() * 512) == 8.0
    assert plan.num_reads == 4
    assert plan.offsets.tolist() == [0, 2 * PAGE, 5 * PAGE, 20 * PAGE]


def test_rows_sharing_a_page_are_read_once_and_adjacent_pages_coalesce() -> None:
    ids = torch.tensor([9, 8, 15, 16, 8])  # pages 1, 1, 1, 2, 1 (duplicates allowed)
    plan = plan_row_reads(ids, offset=0, row_stride=512, row_bytes=512)
    assert plan.total_bytes == 2 * PAGE
    assert plan.num_reads == 1 and plan.offsets.tolist() == [PAGE] and plan.lengths.tolist() == [2 * PAGE]
    assert plan.row_pos.tolist() == [512, 0, 7 * 512, PAGE, 0]


def test_a_row_straddling_a_page_reads_two_pages() -> None:
    plan = plan_row_reads(torch.tensor([1]), offset=0, row_stride=3000, row_bytes=3000)  # bytes 3000..5999
    assert plan.total_bytes == 2 * PAGE and plan.num_reads == 1
    assert plan.row_pos.tolist() == [3000]


def test_max_io_bytes_splits_long_runs() -> None:
    plan = plan_row_reads(torch.arange(0, 64 * 8), offset=0, row_stride=512, row_bytes=512, max_io_bytes=16 * PAGE)
    assert plan.total_bytes == 64 * PAGE
    assert plan.lengths.tolist() == [16 * PAGE] * 4
    assert plan.buf_pos.tolist() == [0, 16 * PAGE, 32 * PAGE, 48 * PAGE]


def test_span_reads_cover_an_unaligned_span() -> None:
    plan = plan_span_reads(PAGE + 10, 3 * PAGE, max_io_bytes=2 * PAGE)
    assert plan.offsets.tolist() == [PAGE, 3 * PAGE] and plan.lengths.tolist() == [2 * PAGE, 2 * PAGE]
    assert int(plan.row_pos[0]) == 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rows_from_buffer_is_exact_at_any_byte_offset(dtype: torch.dtype) -> None:
    buf = aligned_empty(3 * PAGE)
    buf.copy_(torch.randint(0, 256, (3 * PAGE,), dtype=torch.uint8))
    elem = torch.empty(0, dtype=dtype).element_size()
    pos = torch.tensor([0, 4094, 10, 2 * PAGE - 7])
    rows = rows_from_buffer(buf, pos, 10 * elem, dtype)
    for i, p in enumerate(pos.tolist()):
        assert torch.equal(rows[i].view(torch.uint8), buf[p:p + 10 * elem])


def test_strategy_amplification_is_8x_for_scattered_512_byte_rows(tmp_path: Path) -> None:
    g = make_store(tmp_path, num_nodes=4096, feat_dim=128)  # 512 B rows
    ref = reference_features(g)
    ids = torch.arange(0, 4096, 64)  # one row on every 8th page: no page shared, none adjacent
    with create("out-of-core", io="direct") as s:
        s.prepare(g, torch.device("cpu"))
        s.reset_stats()
        assert torch.equal(s.gather(ids), ref[ids])
        st = s.stats()
    assert st.bytes_by_tier["disk"] == ids.numel() * PAGE
    assert st.extras["read_amplification"] == pytest.approx(8.0)
    assert st.io_ops == ids.numel()


def test_strategy_amplification_for_a_straddling_row(tmp_path: Path) -> None:
    g, feats = padded_graph(tmp_path, num_nodes=40, feat_dim=750, dtype=torch.float32, offset=0, pad=0)  # 3000 B rows
    with create("out-of-core", io="direct") as s:
        s.prepare(g, torch.device("cpu"))
        assert torch.equal(s.gather(torch.tensor([1])), feats[[1]])
        assert s.stats().bytes_by_tier["disk"] == 2 * PAGE
