"""Building blocks of the ``out-of-core`` strategy, one job per module.

- ``align``: page-aligned host buffers; ``extents``: rows -> coalesced page-aligned reads;
- ``direct`` (O_DIRECT, thread pool), ``mmapio`` (page cache), ``kvikio_io`` (GPUDirect Storage): the I/O paths;
- ``sources``: rowwise store and packed-segment readers over those paths; ``packed``: the packed format + checksums;
- ``hotcache``: static hot caches (device, host); ``planner``: superbatch planning with the Belady look-ahead cache
  (``accessbench.kernels.belady``); ``assemble``: rows from every tier into one tensor; ``pipeline``: threads and depth-2 queues;
- ``pagecache``: drop/inspect a file's cached pages; ``counters`` and ``accounting``: own and kernel disk counters.
"""

from .align import PAGE, aligned_empty
from .extents import ReadPlan, plan_row_reads, plan_span_reads, rows_from_buffer
from .options import OutOfCoreOptions
from .packed import PackedFileError, PackedIndex, PackedWriter, open_packed
from .pagecache import DropResult, drop_file_pages, filesystem_of, resident_fraction

__all__ = [
    "PAGE",
    "DropResult",
    "OutOfCoreOptions",
    "PackedFileError",
    "PackedIndex",
    "PackedWriter",
    "ReadPlan",
    "aligned_empty",
    "drop_file_pages",
    "filesystem_of",
    "open_packed",
    "plan_row_reads",
    "plan_span_reads",
    "resident_fraction",
    "rows_from_buffer",
]

from . import strategy as strategy  # registers ``out-of-core``
