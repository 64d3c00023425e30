"""Triton kernel: gather rows from a table the GPU reads over UVA (pinned host memory) into device memory.

Imports triton at module level: import this module lazily (``accessbench.kernels.device.triton_available()`` first).
The kernel runs compiled on CUDA tensors, or under ``TRITON_INTERPRET=1`` (read when ``gather_rows`` is called)
on CPU tensors, which is how its logic is tested without a GPU. See ``gather_plan`` for the layout.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
import triton
import triton.language as tl

from accessbench.kernels.errors import InvalidIds

from .gather_plan import DEFAULT_ALIGN_BYTES, DEFAULT_TILE_WORDS, GatherPlan, plan_gather
from .gather_ref import check_id_tensor
from .table import RowTable

__all__ = ["UNSPECIALISED", "PreparedIds", "gather_rows", "interpreting", "launch", "prepare_ids"]

_WORD_TYPES = {1: tl.int8, 2: tl.int16, 4: tl.int32}


def _gather_kernel(
    src_ptr,  # words of the table, at row 0 (any alignment the plan allows)
    ids_ptr,  # int64 [n] row ids in load order (sorted when the gather sorts)
    rows_ptr,  # int64 [n] output row of each load (the sort permutation); unused unless PERMUTED
    out_ptr,  # words of the dense output [n, row_words]
    n,
    num_rows,
    lead_vecs,
    stride_vecs,
    row_vecs,
    n_chunks,
    n_tiles,
    VEC: tl.constexpr,  # words per vector access
    ALIGN_VECS: tl.constexpr,  # vectors per alignment boundary
    ROWS: tl.constexpr,  # rows per tile
    BLOCK: tl.constexpr,  # words per chunk
    PERMUTED: tl.constexpr,
):
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    r = tl.arange(0, ROWS)
    lane = tl.arange(0, BLOCK)
    row_words = row_vecs * VEC
    for tile in range(pid, n_tiles, nprog):  # grid-stride: a capped grid still covers every tile
        pos = (tile * ROWS + r).to(tl.int64)  # n < 2**31, so tile * ROWS fits int32
        listed = pos < n
        rid = tl.load(ids_ptr + pos, mask=listed, other=0).to(tl.int64)
        ok = listed & (rid >= 0) & (rid < num_rows)  # never touch memory for an id outside the table
        if PERMUTED:
            orow = tl.load(rows_ptr + pos, mask=listed, other=0).to(tl.int64)
        else:
            orow = pos
        head_vecs = (lead_vecs + rid * stride_vecs) % ALIGN_VECS
        head = head_vecs * VEC  # words between the aligned first access and the row's first word
        src_off = (rid * stride_vecs - head_vecs) * VEC  # aligned first access, words from row 0
        dst_off = orow * row_words - head
        end = head + row_words
        for c in range(n_chunks):
            col = c * BLOCK + lane
            m = ok[:, None] & (col[None, :] >= head[:, None]) & (col[None, :] < end[:, None])
            x = tl.load(src_ptr + (src_off[:, None] + col[None, :]), mask=m)
            tl.store(out_ptr + (dst_off[:, None] + col[None, :]), x, mask=m)


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET`` is set (read now, not at import)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


#: Arguments the compiled kernel is not specialised on. Triton would otherwise compile a variant per value class of
#: each integer (``== 1``, divisible by 16, other): the id count and the tile count change with every batch, so a
#: measured step could meet a fresh compile. Everything else a launch passes is fixed per table and plan, and the
#: id and output buffers are always 16-byte aligned (``prepare_ids``, fresh outputs), so one strategy compiles once.
UNSPECIALISED: tuple[str, ...] = ("n", "n_tiles")


@functools.cache
def _kernel(interpret: bool) -> Any:
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(_gather_kernel)
    return triton.jit(_gather_kernel, do_not_specialize=list(UNSPECIALISED))


class PreparedIds:
    """Ids ready for launch: int64 on the kernel's device, in load order, with the output row of each."""

    __slots__ = ("load_ids", "n", "out_rows")

    def __init__(self, load_ids: torch.Tensor, out_rows: torch.Tensor | None) -> None:
        self.load_ids = load_ids
        self.out_rows = out_rows  # None: load order is the caller's order
        self.n = int(load_ids.numel())


def prepare_ids(ids: torch.Tensor, num_rows: int, *, device: torch.device, sort: bool = True,
                check: bool = True) -> PreparedIds:
    """Move ``ids`` to ``device`` as int64, sort them (keeping the permutation) and check their range.

    The load ids are contiguous and 16-byte aligned (a sliced view is copied), so every launch has the same
    pointer specialisation.

    The range check reads the two ends of the sorted ids (or their min/max): one small device-to-host copy.
    Out-of-range ids raise ``InvalidIds``; with ``check=False`` the kernel still skips them (their rows stay unset).
    """
    check_id_tensor(ids)
    ids = ids.to(device=device, dtype=torch.int64, non_blocking=True)
    if ids.numel() == 0:
        return PreparedIds(ids, None)
    if sort:
        load_ids, out_rows = torch.sort(ids)
        ends = torch.stack((load_ids[0], load_ids[-1]))
    else:
        load_ids, out_rows = ids, None
        if not ids.is_contiguous() or ids.data_ptr() % 16:  # a view: copy, so every launch sees 16-byte alignment
            load_ids = ids.clone(memory_format=torch.contiguous_format)
        ends = torch.stack(torch.aminmax(ids)) if check else None
    if check and ends is not None:
        lo, hi = ends.tolist()
        if lo < 0 or hi >= num_rows:
            raise InvalidIds(f"ids out of range: min {lo}, max {hi}, valid [0, {num_rows})")
    return PreparedIds(load_ids.contiguous(), out_rows)


def launch(table: RowTable, prepared: PreparedIds, out: torch.Tensor, plan: GatherPlan, *,
           max_programs: int | None = None, num_warps: int = 4) -> None:
    """Enqueue the kernel on the current stream: ``out[out_rows[k]] = table[load_ids[k]]`` for every k."""
    if prepared.n == 0:
        return
    interpret = interpreting()
    if not interpret and (table.device.type != "cuda" or out.device.type != "cuda"):
        raise ValueError("the Triton gather runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1")
    word = _WORD_TYPES[plan.word_bytes]
    src = triton.reinterpret(table.data, word)
    dst = triton.reinterpret(out, word)
    rows = prepared.out_rows if prepared.out_rows is not None else prepared.load_ids
    grid = (plan.programs(prepared.n, max_programs),)
    _kernel(interpret)[grid](
        src, prepared.load_ids, rows, dst,
        prepared.n, table.num_rows, plan.lead_vecs, plan.stride_vecs, plan.row_vecs, plan.chunks,
        plan.tiles(prepared.n),
        VEC=plan.vec_words, ALIGN_VECS=plan.align_vecs, ROWS=plan.rows_per_tile, BLOCK=plan.block_words,
        PERMUTED=prepared.out_rows is not None, num_warps=num_warps,
        enable_fp_fusion=False,  # an integer copy: nothing to fuse (and no default-fusion warning from triton)
    )


def gather_rows(
    table: RowTable,
    ids: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    sort: bool = True,
    check: bool = True,
    align_bytes: int = DEFAULT_ALIGN_BYTES,
    vector_bytes: int | None = None,
    max_programs: int | None = None,
    tile_words: int = DEFAULT_TILE_WORDS,
    num_warps: int = 4,
) -> torch.Tensor:
    """Rows ``table[ids]`` as ``[len(ids), row_elems]`` of ``table.dtype`` on the table's device, caller's order.

    ``sort``: load rows in ascending id order and write each back through the permutation.
    ``check``: raise ``InvalidIds`` for ids outside ``[0, num_rows)`` (one small sync); without it such rows are
    skipped, never read. ``align_bytes``/``vector_bytes``/``tile_words``: see ``plan_gather``.
    ``max_programs``: cap on the programs launched (each loops over tiles), leaving SMs free for other work.
    """
    device = table.device
    prepared = prepare_ids(ids, table.num_rows, device=device, sort=sort, check=check)
    if out is None:
        out = torch.empty((prepared.n, table.row_elems), dtype=table.dtype, device=device)
    elif (out.shape != (prepared.n, table.row_elems) or out.dtype != table.dtype or out.device != device
          or not out.is_contiguous()):
        raise ValueError(f"out must be a contiguous {table.dtype} tensor of shape ({prepared.n}, {table.row_elems}) "
                         f"on {device}")
    if prepared.n == 0:
        return out
    plan = plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride,
                       out_address=out.data_ptr(), align_bytes=align_bytes, vector_bytes=vector_bytes,
                       tile_words=tile_words)
    launch(table, prepared, out, plan, max_programs=max_programs, num_warps=num_warps)
    return out
