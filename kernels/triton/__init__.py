"""GPU kernels (Triton) behind a torch API, each with a pure-torch reference beside it.

Importing this package does not import triton: ``gather_plan``, ``table`` and ``gather_ref`` are plain Python and
torch; ``uva_gather`` (the kernel and its launcher) imports triton and is imported only where it runs.
"""

from kernels.triton.gather_plan import (
    DEFAULT_ALIGN_BYTES,
    DEFAULT_TILE_WORDS,
    VECTOR_BYTES,
    GatherPlan,
    plan_gather,
    sector_bytes_per_row,
    widest_vector_bytes,
)
from kernels.triton.gather_ref import emulate_plan, gather_rows_reference, validate_row_ids
from kernels.triton.table import RowTable, byte_view

__all__ = [
    "DEFAULT_ALIGN_BYTES",
    "DEFAULT_TILE_WORDS",
    "VECTOR_BYTES",
    "GatherPlan",
    "RowTable",
    "byte_view",
    "emulate_plan",
    "gather_rows_reference",
    "plan_gather",
    "sector_bytes_per_row",
    "validate_row_ids",
    "widest_vector_bytes",
]
