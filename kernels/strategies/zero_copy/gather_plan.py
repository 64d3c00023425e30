"""How the UVA row gather lays out its work: vector width, 128-byte alignment, tiles. Pure Python, no triton.

The gather copies ``row_bytes`` bytes of each requested row from a table whose row ``i`` starts at
``base + i * row_stride`` (any alignment) into a dense output. Everything is done in *vectors* of ``V`` bytes, the
widest power of two (at most 16) that divides the table's base address, the row stride, the row size and the
output's address, so every vector access is naturally aligned on both sides. A vector is moved as ``V / word``
contiguous words of ``word = min(V, 4)`` bytes, which the compiler fuses into one ``V``-byte access.

Alignment: each row's first access is moved down to an ``align_bytes`` boundary (128 by default, one cache line /
one full PCIe read request) and the lanes in front of the row are masked, so a row's reads are whole aligned
segments except for the masked head and tail. ``head`` (in vectors) is how far the row starts past that boundary.

Tiles: a program handles ``rows_per_tile`` rows at once as a ``[rows_per_tile, block_words]`` tile and walks the
row's span (head + row, at most ``max_head + row``) in ``chunks`` steps of ``block_words`` words; programs loop over
tiles in a grid-stride loop, so capping the number of programs caps the SMs the gather occupies.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DEFAULT_ALIGN_BYTES",
    "DEFAULT_TILE_WORDS",
    "MAX_TILE_WORDS",
    "VECTOR_BYTES",
    "SECTOR_BYTES",
    "GatherPlan",
    "csr_sector_bytes",
    "plan_gather",
    "sector_bytes_per_row",
    "widest_vector_bytes",
]

#: Vector widths the gather can use, in bytes, widest first.
VECTOR_BYTES: tuple[int, ...] = (16, 8, 4, 2, 1)
DEFAULT_ALIGN_BYTES = 128
DEFAULT_TILE_WORDS = 2048  # words per program iteration (rows_per_tile * block_words)
#: The largest tile a plan uses (larger requests are capped): 8192 words is 64 words per thread at 4 warps, which
#: compiles with some spilling; far larger tiles exceed Triton's tensor size limit or ptxas' registers and the
#: compile fails. An alignment of 4096 B with 1-byte vectors still needs 4096-word blocks, under the cap.
MAX_TILE_WORDS = 8192
#: The smallest unit a GPU read of host memory moves (one L2 sector; PCIe read requests carry whole sectors).
SECTOR_BYTES = 32
_MAX_ALIGN_BYTES = 4096
_WASTE_TOLERANCE = 1.25  # accept up to 25% more lanes than the tightest block size, for fewer, wider chunks


def _is_pow2(x: int) -> bool:
    return x > 0 and x & (x - 1) == 0


def widest_vector_bytes(*, base_address: int, row_stride: int, row_bytes: int, out_address: int = 0) -> int:
    """The widest vector (bytes, one of ``VECTOR_BYTES``) that divides every address the gather touches.

    Row ``i`` is read at ``base_address + i * row_stride`` and written at ``out_address + j * row_bytes``; a vector
    of ``V`` bytes is aligned on both sides for every row iff ``V`` divides all four numbers.
    """
    for v in VECTOR_BYTES:
        if base_address % v == 0 and row_stride % v == 0 and row_bytes % v == 0 and out_address % v == 0:
            return v
    return 1  # pragma: no cover - 1 divides everything


def _next_pow2(x: int) -> int:
    return 1 << max(0, (int(x) - 1).bit_length())


@dataclass(frozen=True)
class GatherPlan:
    """The layout of one gather launch (all counts are integers; units in the names)."""

    vector_bytes: int  # V: bytes per vector access
    word_bytes: int  # bytes per word the kernel moves (1, 2 or 4); vec_words words form one vector
    vec_words: int
    align_bytes: int  # A: each row's first access starts on an A-byte boundary (A >= V)
    align_vecs: int  # A / V
    lead_vecs: int  # (base_address mod A) / V: where row 0 of the table sits past an A boundary
    stride_vecs: int  # row_stride / V
    row_vecs: int  # row_bytes / V
    max_head_vecs: int  # the largest head any row can have
    block_words: int  # words per chunk (power of two, block_words * word_bytes >= A)
    rows_per_tile: int  # rows per program iteration (power of two)
    chunks: int  # chunks that cover max_head + row

    @property
    def row_words(self) -> int:
        """Words per row."""
        return self.row_vecs * self.vec_words

    @property
    def span_words(self) -> int:
        """Words from the aligned first access to the end of the row, for the worst-placed row."""
        return (self.max_head_vecs + self.row_vecs) * self.vec_words

    @property
    def lane_efficiency(self) -> float:
        """Fraction of a row's lanes that move payload (the rest are the masked head and tail)."""
        return self.row_words / (self.chunks * self.block_words)

    def head_vecs(self, row_id: int) -> int:
        """How far row ``row_id`` starts past its aligned first access, in vectors."""
        return (self.lead_vecs + row_id * self.stride_vecs) % self.align_vecs

    def tiles(self, n: int) -> int:
        """Tiles (program iterations) that cover ``n`` ids."""
        return -(-n // self.rows_per_tile)

    def programs(self, n: int, max_programs: int | None) -> int:
        """Programs to launch for ``n`` ids: one per tile, capped at ``max_programs`` (None or 0: no cap)."""
        t = self.tiles(n)
        return t if not max_programs else max(1, min(t, int(max_programs)))

    def describe(self) -> dict[str, Any]:
        """The plan as a flat dict (for stats extras and results)."""
        d = asdict(self)
        d["lane_efficiency"] = round(self.lane_efficiency, 4)
        return d


def plan_gather(
    *,
    base_address: int,
    row_bytes: int,
    row_stride: int,
    out_address: int = 0,
    align_bytes: int = DEFAULT_ALIGN_BYTES,
    vector_bytes: int | None = None,
    tile_words: int = DEFAULT_TILE_WORDS,
) -> GatherPlan:
    """Choose the vector width, alignment and tile shape for gathering rows of a table.

    ``vector_bytes`` forces a width (it must divide what the addresses allow); None picks the widest.
    ``align_bytes`` is a power of two up to 4096; values below the vector width mean "no extra alignment".
    ``tile_words`` is capped at ``MAX_TILE_WORDS`` (a larger tile would fail the kernel's compile).
    Raises ``ValueError`` naming the valid choices.
    """
    if row_bytes < 1:
        raise ValueError(f"row_bytes must be >= 1, got {row_bytes}")
    if row_stride < row_bytes:
        raise ValueError(f"row_stride ({row_stride}) must be >= row_bytes ({row_bytes})")
    if base_address < 0 or out_address < 0:
        raise ValueError("addresses must be non-negative")
    if not _is_pow2(align_bytes) or align_bytes > _MAX_ALIGN_BYTES:
        raise ValueError(f"align_bytes={align_bytes}; valid: a power of two from 1 to {_MAX_ALIGN_BYTES}")
    if not _is_pow2(tile_words) or tile_words < 16:
        raise ValueError(f"tile_words={tile_words}; valid: a power of two >= 16")
    tile_words = min(tile_words, MAX_TILE_WORDS)
    widest = widest_vector_bytes(base_address=base_address, row_stride=row_stride, row_bytes=row_bytes,
                                 out_address=out_address)
    if vector_bytes is None:
        v = widest
    else:
        allowed = [x for x in VECTOR_BYTES if x <= widest]
        if vector_bytes not in allowed:
            raise ValueError(f"vector_bytes={vector_bytes} is not possible for this table (base 0x{base_address:x}, "
                             f"stride {row_stride} B, row {row_bytes} B); valid: {', '.join(map(str, allowed))}")
        v = vector_bytes
    word = min(v, 4)
    vec_words = v // word
    a = max(align_bytes, v)
    align_vecs = a // v
    lead_vecs = (base_address % a) // v
    stride_vecs, row_vecs = row_stride // v, row_bytes // v
    # heads (lead + i * stride) mod align take the values lead mod g + k * g, g = gcd(stride, align)
    g = math.gcd(stride_vecs, align_vecs)
    max_head = align_vecs - g + (lead_vecs % g)
    span = (max_head + row_vecs) * vec_words
    min_block = max(a // word, vec_words)
    max_block = max(min_block, min(tile_words, _next_pow2(span)))
    candidates = []
    b = min_block
    while b <= max_block:
        candidates.append((b, -(-span // b) * b))
        b *= 2
    tightest = min(lanes for _, lanes in candidates)
    block = max(b for b, lanes in candidates if lanes <= tightest * _WASTE_TOLERANCE)
    return GatherPlan(
        vector_bytes=v, word_bytes=word, vec_words=vec_words, align_bytes=a, align_vecs=align_vecs,
        lead_vecs=lead_vecs, stride_vecs=stride_vecs, row_vecs=row_vecs, max_head_vecs=max_head,
        block_words=block, rows_per_tile=max(1, tile_words // block), chunks=-(-span // block),
    )


def sector_bytes_per_row(*, start_address: int, row_bytes: int, sector: int = 32) -> int:
    """Bytes of the ``sector``-byte segments a row starting at ``start_address`` touches (reads move whole sectors)."""
    head = start_address % sector
    return -(-(head + row_bytes) // sector) * sector


def csr_sector_bytes(frontier: list[Any], *, indptr_address: int, sampled_edges: int,
                     indptr_entry_bytes: int = 8) -> Any:
    """Estimated bytes of the 32-byte sectors sampling reads from a CSR in host memory: for each frontier node
    ``v`` (a 1-D id tensor per hop; device or CPU), the two ``indptr`` entries ``[v, v + 1]`` (16 B: one sector, or
    two where they straddle a sector boundary), plus one sector per sampled edge (each chosen index is a random read;
    an upper bound: indices of one node that share a sector may be read once). Returns a 0-d tensor (on the ids'
    device, summed without a host sync) plus an int, as ``tensor + int``; an int when there is no frontier."""
    total: Any = SECTOR_BYTES * int(sampled_edges)
    span = 2 * indptr_entry_bytes
    for ids in frontier:
        if ids.numel():
            head = (ids * indptr_entry_bytes + indptr_address) % SECTOR_BYTES
            total = ((head + span + SECTOR_BYTES - 1) // SECTOR_BYTES * SECTOR_BYTES).sum() + total
    return total
