"""Pure-torch references for the UVA row gather: the oracle, and an emulation of the kernel's lane arithmetic.

``gather_rows_reference`` is what the kernel must return (byte-exact rows in the caller's order).
``emulate_plan`` replays the kernel's index arithmetic for a ``GatherPlan`` with torch ops (sorted load order,
aligned first access, masked lanes, chunks, scatter-back through the permutation) and reports every lane's address,
so tests can check the alignment and masking rules without a GPU and compare the Triton kernel with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from accessbench.kernels.base import check_id_tensor, check_ids

from .gather_plan import GatherPlan
from .table import RowTable

__all__ = ["LaneTrace", "check_id_tensor", "emulate_plan", "gather_rows_reference", "validate_row_ids"]

def validate_row_ids(ids: torch.Tensor, num_rows: int) -> None:
    """Raise ``InvalidIds`` unless ``ids`` is a 1-D integer tensor with values in ``[0, num_rows)`` (``check_ids``)."""
    check_ids(ids, num_rows)


def gather_rows_reference(table: RowTable, ids: torch.Tensor) -> torch.Tensor:
    """``[len(ids), row_elems]`` rows of ``table`` in the caller's order, on ``table.device`` (byte-exact)."""
    validate_row_ids(ids, table.num_rows)
    ids = ids.to(table.device, torch.int64)
    byte = torch.arange(table.row_bytes, device=table.device)
    idx = ids.unsqueeze(1) * table.row_stride + byte.unsqueeze(0)
    raw = table.data[idx.flatten()].view(ids.numel(), table.row_bytes)
    return raw.view(table.dtype).reshape(ids.numel(), table.row_elems)


@dataclass(frozen=True)
class LaneTrace:
    """What the kernel's lanes do for each id, in load order (sorted when the gather sorts).

    ``load_ids``: int64 ``[n]``; ``out_rows``: int64 ``[n]`` output row each load is written to;
    ``first_access``: int64 ``[n]`` byte offset (from the table's row 0) of the row's first chunk (lane 0, even if
    masked); ``read_offsets``: int64 ``[n, chunks * block_words]`` byte offset of every lane's word, ``active``: bool
    of the same shape, True where the lane is unmasked.
    """

    load_ids: torch.Tensor
    out_rows: torch.Tensor
    first_access: torch.Tensor
    read_offsets: torch.Tensor
    active: torch.Tensor
    out: torch.Tensor


def emulate_plan(table: RowTable, ids: torch.Tensor, plan: GatherPlan, *, sort: bool = True) -> LaneTrace:
    """Replay the kernel's arithmetic for ``plan`` on CPU tensors; ``out`` must equal ``gather_rows_reference``."""
    validate_row_ids(ids, table.num_rows)
    ids = ids.cpu().to(torch.int64)
    if sort:
        load_ids, out_rows = torch.sort(ids)
    else:
        load_ids, out_rows = ids, torch.arange(ids.numel())
    w, vw = plan.word_bytes, plan.vec_words
    head_v = (plan.lead_vecs + load_ids * plan.stride_vecs) % plan.align_vecs
    src_off = (load_ids * plan.stride_vecs - head_v) * vw  # words from row 0 to the aligned first access
    head = head_v * vw
    col = torch.arange(plan.chunks * plan.block_words)
    active = (col.unsqueeze(0) >= head.unsqueeze(1)) & (col.unsqueeze(0) < (head + plan.row_words).unsqueeze(1))
    read_words = src_off.unsqueeze(1) + col.unsqueeze(0)
    data = table.data.cpu()
    words = data[: data.numel() - data.numel() % w].view(-1, w)  # the table as words (row 0 starts a word)
    out_words = torch.zeros(ids.numel(), plan.row_words, w, dtype=torch.uint8)
    dst_col = (col.unsqueeze(0) - head.unsqueeze(1)).clamp(0, plan.row_words - 1)
    r_idx, c_idx = torch.nonzero(active, as_tuple=True)
    out_words[out_rows[r_idx], dst_col[r_idx, c_idx]] = words[read_words[r_idx, c_idx]]
    out = out_words.view(ids.numel(), plan.row_words * w).view(table.dtype).reshape(ids.numel(), table.row_elems)
    return LaneTrace(load_ids=load_ids, out_rows=out_rows, first_access=src_off * w, read_offsets=read_words * w,
                     active=active, out=out)
