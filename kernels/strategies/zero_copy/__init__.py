"""``zero-copy``, whole: host memory pinned in place and read by the GPU over UVA.

- ``strategy``: the strategy (``ZeroCopy``, registered as ``zero-copy``); ``side_stream``: its background loader;
- ``pinning`` (page-lock in place), ``cuda_driver`` (the driver calls, behind a protocol a fake implements),
  ``host_memory`` (pages, spans and what backs an address range);
- ``uva_gather``: the Triton gather kernel and its launcher; ``gather_plan``: alignment, vector width, tiles;
  ``gather_ref``: the kernel's pure-torch reference and emulation; ``table``: a pinned table as the kernel sees it.

Importing this package does not import triton: ``gather_plan``, ``table`` and ``gather_ref`` are plain Python and
torch; ``uva_gather`` (the kernel and its launcher) imports triton and is imported only where it runs.
"""

from .gather_plan import (
    DEFAULT_ALIGN_BYTES,
    DEFAULT_TILE_WORDS,
    VECTOR_BYTES,
    GatherPlan,
    plan_gather,
    sector_bytes_per_row,
    widest_vector_bytes,
)
from .gather_ref import emulate_plan, gather_rows_reference, validate_row_ids
from .table import RowTable, byte_view

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

from . import strategy as strategy  # registers ``zero-copy``
