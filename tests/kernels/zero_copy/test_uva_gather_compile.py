"""The gather kernel through the real Triton compiler for an H100 (sm_90), on a machine without a GPU: it must
compile, and the PTX must use the vector width the plan chose (16-byte loads and stores for aligned tables)."""

from __future__ import annotations

import re

import pytest

from accessbench.kernels.strategies.zero_copy.gather_plan import plan_gather

triton = pytest.importorskip("triton")


def _ptx(base: int, row_bytes: int, *, permuted: bool = True) -> tuple[str, int]:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from accessbench.kernels.strategies.zero_copy.uva_gather import _gather_kernel

    plan = plan_gather(base_address=base, row_bytes=row_bytes, row_stride=row_bytes)
    word = {1: "*i8", 2: "*i16", 4: "*i32"}[plan.word_bytes]
    sig = {"src_ptr": word, "ids_ptr": "*i64", "rows_ptr": "*i64", "out_ptr": word, "n": "i32", "num_rows": "i32",
           "lead_vecs": "i32", "stride_vecs": "i32", "row_vecs": "i32", "n_chunks": "i32", "n_tiles": "i32",
           "VEC": "constexpr", "ALIGN_VECS": "constexpr", "ROWS": "constexpr", "BLOCK": "constexpr",
           "PERMUTED": "constexpr"}
    const = {"VEC": plan.vec_words, "ALIGN_VECS": plan.align_vecs, "ROWS": plan.rows_per_tile,
             "BLOCK": plan.block_words, "PERMUTED": permuted}
    # what triton's launcher specialises: pointers 16-byte aligned get tt.divisibility = 16
    aligned = [i for i, addr in ((0, base), (1, 0), (2, 0), (3, 0)) if addr % 16 == 0]
    attrs = {(i,): [["tt.divisibility", 16]] for i in aligned}
    src = ASTSource(triton.jit(_gather_kernel), sig, const, attrs)
    try:
        kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                options={"num_warps": 4, "enable_fp_fusion": False})
    except RuntimeError as exc:  # pragma: no cover - a triton build without the NVIDIA backend tools
        pytest.skip(f"triton cannot compile for sm_90 here: {exc}")
    return kernel.asm["ptx"], plan.vector_bytes


def _ops(ptx: str, op: str) -> set[str]:
    return set(re.findall(rf"({op}\.global[\w.]*)\s", ptx))


@pytest.mark.parametrize(("base", "row_bytes", "load", "store"), [
    (0x10000, 512, "ld.global.v4.b32", "st.global.v4.b32"),  # 16-byte vectors both ways
    (0x10000, 24, "ld.global.v2.b32", "st.global.v2.b32"),  # 8-byte rows of words
    (0x10000, 6, "ld.global.b16", "st.global.b16"),
    (0x10001, 7, "ld.global.b8", "st.global.b8"),
])
def test_compiles_for_sm90_with_the_planned_vector_width(base: int, row_bytes: int, load: str, store: str) -> None:
    ptx, _ = _ptx(base, row_bytes, permuted=row_bytes != 24)
    loads = _ops(ptx, "ld") - {"ld.global.b64"}  # the int64 ids and permutation
    assert loads == {load}
    assert _ops(ptx, "st") == {store}


def test_one_compiled_variant_whatever_the_id_count() -> None:
    """The launcher's specialisation key must not depend on the id count, so the launch ``prepare`` makes on one id
    compiles the variant every batch uses (no compile inside a measured step). Uses triton's own binder."""
    import torch
    from triton.backends.compiler import BaseBackend
    from triton.runtime.jit import create_function_from_signature

    from accessbench.kernels.strategies.zero_copy.uva_gather import _kernel

    kernel = _kernel(False)
    binder = create_function_from_signature(kernel.signature, kernel.params, BaseBackend)
    words = triton.reinterpret(torch.zeros(256, dtype=torch.uint8), triton.language.int32)
    ids = torch.zeros(64, dtype=torch.int64)
    plan = plan_gather(base_address=words.data_ptr(), row_bytes=64, row_stride=64)
    keys = set()
    for n in (1, 7, 16, 4096, 100_003):
        _, spec, _ = binder(words, ids, ids, words, n, 5000, plan.lead_vecs, plan.stride_vecs, plan.row_vecs,
                            plan.chunks, plan.tiles(n), VEC=plan.vec_words, ALIGN_VECS=plan.align_vecs,
                            ROWS=plan.rows_per_tile, BLOCK=plan.block_words, PERMUTED=True)
        keys.add(tuple(map(str, spec)))
    assert len(keys) == 1
