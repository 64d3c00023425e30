"""``zero-copy``: the GPU reads feature rows and the CSR straight from pinned host memory over UVA.

The host arrays are page-locked where they are (``accessbench.kernels.strategies.zero_copy.pinning``: ``cuMemHostRegister``, no copy) and the GPU
reads them directly: a Triton kernel gathers feature rows (ids sorted on the GPU, results written back through the
permutation, each row's first access aligned down to 128 B with the leading lanes masked, the widest vector access
the addresses allow, an optional cap on programs), and neighbour sampling runs the shared vectorised sampler
(``accessbench.kernels.sampling``) with torch ops on CUDA views of the pinned CSR. The CPU neither gathers nor stages.
``load`` samples and gathers batch i+1 on a side stream (in a background thread) while the caller computes batch i.

Memory-mapped (file-backed) arrays are handled explicitly by ``file_backed`` (see ``ZeroCopyOptions``); what was
done is in ``stats().extras``. Under ``TRITON_INTERPRET=1`` with a CPU device the same code runs the kernel in the
Triton interpreter on host tensors without pinning (tests only; ``availability()`` still needs CUDA and triton).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from accessbench.kernels.base import AccessStrategy, LoadedBatch, check_ids
from accessbench.kernels.device import cuda_available, triton_available
from accessbench.kernels.errors import InvalidOptions, StrategyUnavailable
from accessbench.kernels.registry import register
from accessbench.kernels.sampling import sample_blocks
from accessbench.kernels.types import AccessStats, GraphData, SampledBatch

from .gather_plan import (
    MAX_TILE_WORDS,
    VECTOR_BYTES,
    GatherPlan,
    csr_sector_bytes,
    plan_gather,
    sector_bytes_per_row,
)
from .pinning import (
    PinnedBuffer,
    PinningError,
    aligned_copy,
    memory_backing,
    page_neighbour,
    pin_in_place,
    span_bytes,
)
from .side_stream import BatchLedger, SideStreamLoader
from .table import RowTable
from .toolchain import Toolchain, check_toolchain

__all__ = ["ZeroCopy", "ZeroCopyOptions"]

_FILE_HINT = ("zero-copy option file_backed=materialize copies a mapped array once into anonymous memory; "
              "file_backed=readonly pins the mapped pages in place, read-only")


@dataclass(frozen=True)
class ZeroCopyOptions:
    """``sort_ids``: gather rows in ascending id order and write them back through the permutation.
    ``align_bytes``: each row's first access starts on this boundary (power of two up to 4096; 1 disables).
    ``vector_bytes``: 0 picks the widest access the addresses allow; 1, 2, 4, 8 or 16 forces one.
    ``max_programs``: cap on the gather kernel's programs (0: one per tile), to leave SMs to concurrent compute.
    ``prefetch``: batches sampled and gathered ahead on a side stream by ``load`` (0: none, sequential).
    ``file_backed``: memory-mapped host arrays are ``materialize``d (copied once into anonymous memory, then pinned;
    the copied bytes are in stats extras), pinned in place ``readonly``, or refused (``error``).
    ``chunk_mib``: largest piece per registration call. ``tile_words``/``num_warps``: kernel tile size and warps.
    """

    sort_ids: bool = True
    align_bytes: int = 128
    vector_bytes: int = 0
    max_programs: int = 0
    prefetch: int = 1
    file_backed: Literal["materialize", "readonly", "error"] = "materialize"
    chunk_mib: int = 1024
    tile_words: int = 2048
    num_warps: int = 4

    def __post_init__(self) -> None:
        if self.align_bytes < 1 or self.align_bytes & (self.align_bytes - 1) or self.align_bytes > 4096:
            raise ValueError("align_bytes must be a power of two from 1 to 4096")
        if self.vector_bytes not in (0, *VECTOR_BYTES):
            raise ValueError(f"vector_bytes must be 0 (widest) or one of {', '.join(map(str, VECTOR_BYTES))}")
        if self.max_programs < 0:
            raise ValueError("max_programs must be >= 0 (0: no cap)")
        if not 0 <= self.prefetch <= 16:
            raise ValueError("prefetch must be in [0, 16]")
        if self.chunk_mib < 1:
            raise ValueError("chunk_mib must be >= 1")
        if self.tile_words < 16 or self.tile_words & (self.tile_words - 1) or self.tile_words > MAX_TILE_WORDS:
            raise ValueError(f"tile_words must be a power of two from 16 to {MAX_TILE_WORDS} (larger tiles fail "
                             "the kernel's compile)")
        if self.num_warps not in (1, 2, 4, 8, 16):
            raise ValueError("num_warps must be one of 1, 2, 4, 8, 16")


def _toolchain(device: torch.device | None) -> Toolchain | None:
    """Triton's ptxas and the driver's CUDA for ``device`` (None: the current one); None where they cannot be
    read (then the first launch tells)."""
    try:
        major, minor = torch.cuda.get_device_capability(device)
        return check_toolchain(10 * major + minor)
    except Exception:  # noqa: BLE001 - a broken query must not hide the strategy; the compile in prepare tells
        return None


def _interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@register("zero-copy")
class ZeroCopy(AccessStrategy):
    """Pinned-in-place host memory read by the GPU over UVA: Triton row gather, sampling over the pinned CSR."""

    Options = ZeroCopyOptions

    def __init__(self, options: ZeroCopyOptions | None = None) -> None:
        super().__init__(options)
        self._pinned: list[PinnedBuffer] = []
        self._indptr: torch.Tensor | None = None
        self._indices: torch.Tensor | None = None
        self._table: RowTable | None = None
        self._plans: dict[int, GatherPlan] = {}
        self._side: torch.cuda.Stream | None = None
        self._pipelines: list[SideStreamLoader] = []
        self._setup: dict[str, Any] = {}
        self.counters = BatchLedger()  # rows, bytes, kernel time: per call, or per batch under prefetch
        self._reset_counters()

    NEEDS_CUDA = True

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        if not cuda_available():
            return False, "needs a CUDA device (the GPU reads pinned host memory over UVA); torch sees none"
        if not triton_available():
            return False, "needs triton for the gather kernel (pip install 'accessbench[gpu]')"
        tc = _toolchain(None)
        if tc is not None and tc.problem:
            return False, tc.problem
        return True, "available"

    # ---- placement ------------------------------------------------------------------------------------------------
    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Pin features, indptr and indices in place and build the kernel's table and the CSR views."""
        interpreted = device.type == "cpu" and _interpreter_requested() and triton_available()
        if device.type != "cuda" and not interpreted:
            raise StrategyUnavailable(f"zero-copy: the compute device must be CUDA (got {device}); the GPU reads "
                                      "pinned host memory over UVA")
        ok, reason = self.availability() if not interpreted else (True, "")
        if not ok:
            raise StrategyUnavailable(f"zero-copy: {reason}")
        for name in ("features", "indptr", "indices"):
            if getattr(graph, name).device.type != "cpu":
                raise ValueError(f"zero-copy expects the graph in host memory; {name} is on "
                                 f"{getattr(graph, name).device}")
        self.graph, self.device = graph, device
        self._reset_counters()  # the kernel clock depends on the device
        self._setup = {"interpreted": interpreted, "materialized_bytes": 0, "pinned_bytes": 0,
                       "read_only_bytes": 0, "already_locked_bytes": 0, "page_copied_bytes": 0,
                       "ptxas_cuda": None, "driver_cuda": None}
        if not interpreted:  # the driver must load what triton's ptxas assembles for this device's arch
            tc = _toolchain(device)
            if tc is not None:
                if tc.problem:
                    raise StrategyUnavailable(f"zero-copy: {tc.problem}")
                self._setup.update(tc.describe())
        import accessbench.kernels.strategies.zero_copy.uva_gather  # noqa: F401  (fail here, not in the first gather, if triton is broken)

        if interpreted:
            self._indptr, self._indices = graph.indptr, graph.indices
            self._table = RowTable.from_tensor(graph.features)
            self._check_vector_option()
            self._compile_kernel()
            return
        try:
            feats = self._pin(graph.features, "features")
            indptr = self._pin(graph.indptr, "indptr")
            indices = self._pin(graph.indices, "indices")
            self._indptr, self._indices = indptr.view(), indices.view()
            self._table = RowTable.from_tensor(feats.tensor, data=feats.byte_view())
            self._check_vector_option()
            self._side = torch.cuda.Stream(device)
            self._compile_kernel()
        except BaseException:
            self._release()
            raise

    def _compile_kernel(self) -> None:
        """Launch the gather once, on row 0, so that Triton compiles (or loads from its disk cache) the kernel here,
        in ``prepare_s``, and never in a measured step. Every later launch of this strategy uses the same variant:
        the plan is fixed per table, ``sort_ids`` fixes the permutation flag, and the launcher does not specialise
        on the id count (see ``accessbench.kernels.strategies.zero_copy.uva_gather``). Nothing is counted."""
        from accessbench.kernels.strategies.zero_copy import uva_gather as ug

        table, opts = self._table, self.options
        assert table is not None
        if table.num_rows == 0:
            return
        prepared = ug.prepare_ids(torch.zeros(1, dtype=torch.int64), table.num_rows, device=self.device,
                                  sort=opts.sort_ids)
        out = torch.empty((1, table.row_elems), dtype=table.dtype, device=self.device)
        ug.launch(table, prepared, out, self._plan(out), max_programs=opts.max_programs or None,
                  num_warps=opts.num_warps)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _check_vector_option(self) -> None:
        """A forced ``vector_bytes`` must suit the table (outputs are always 16-byte aligned)."""
        table = self._table
        assert table is not None
        try:
            plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride,
                        vector_bytes=self.options.vector_bytes or None, align_bytes=self.options.align_bytes)
        except ValueError as exc:
            raise InvalidOptions(f"zero-copy: {exc}") from None

    def _pin(self, t: torch.Tensor, name: str) -> PinnedBuffer:
        """Pin ``t`` in place, following ``file_backed`` for memory-mapped arrays.

        Copies (materialized arrays, and arrays that share a memory page with memory this process pinned already)
        go into page-aligned, page-rounded buffers: the driver registers whole pages, so two registrations must
        never share one.
        """
        opts: ZeroCopyOptions = self.options
        backing = memory_backing(t.data_ptr(), span_bytes(t))
        read_only = False
        if backing.needs_care:
            what = f"{name} is mapped from {backing.path or 'a read-only mapping'} ({backing.kind})"
            if opts.file_backed == "error":
                raise PinningError(f"zero-copy: {what}; pinning it with write access would copy or fail; "
                                   f"{_FILE_HINT}")
            if opts.file_backed == "materialize":
                try:
                    t = aligned_copy(t)
                except RuntimeError as exc:
                    raise PinningError(f"zero-copy: {what}; materializing its {span_bytes(t)} bytes failed "
                                       f"({str(exc).splitlines()[0]}); try file_backed=readonly") from None
                self._setup["materialized_bytes"] += span_bytes(t)
            else:
                read_only = True
        if page_neighbour(t) is not None and not read_only:  # e.g. small heap arrays next to each other
            t = aligned_copy(t)
            self._setup["page_copied_bytes"] += span_bytes(t)
        buf = pin_in_place(t, name=name, device=self.device, read_only=read_only,
                           chunk_bytes=self.options.chunk_mib << 20, hint=_FILE_HINT if backing.needs_care else "")
        self._pinned.append(buf)
        self._setup["pinned_bytes"] += buf.owned_bytes
        self._setup["already_locked_bytes"] += buf.nbytes - buf.owned_bytes
        self._setup["read_only_bytes"] += buf.nbytes if read_only else 0
        return buf

    # ---- sampling -------------------------------------------------------------------------------------------------
    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """The shared uniform sampler run by the GPU over the pinned CSR (``generator`` on the compute device)."""
        g = self._require_prepared()
        if generator.device.type != self.device.type:
            raise ValueError(f"zero-copy samples on {self.device}: pass a generator created there "
                             f"(torch.Generator(device='{self.device}')), got one on {generator.device}")
        seeds = check_ids(seeds.to(self.device), g.num_nodes)
        batch = sample_blocks(self._indptr, self._indices, seeds, fanouts, generator)
        idx_size = self._indices.element_size()
        csr = sum(16 * b.num_dst + idx_size * b.num_edges for b in batch.blocks)  # payload: indptr pairs + indices
        # what the link moves for those reads: whole 32-byte sectors (dst nodes are node_ids' first num_dst)
        sectors = csr_sector_bytes([batch.node_ids[:b.num_dst] for b in batch.blocks],
                                   indptr_address=self._indptr.data_ptr(), sampled_edges=batch.num_edges)
        with self.counters.counting() as counts:
            counts.add_bytes("h2d", csr)
            counts.add_bytes("host", csr)
            counts.csr_bytes += csr
            counts.add_csr_sector_bytes(sectors)
        return batch

    # ---- gathering ------------------------------------------------------------------------------------------------
    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``features[ids]`` read by the Triton kernel over UVA into device memory; exact, caller's order."""
        from accessbench.kernels.strategies.zero_copy import uva_gather as ug

        g = self._require_prepared()
        table, opts = self._table, self.options
        assert table is not None
        with self.counters.counting() as counts:
            # the phase starts before the ids move to the device and are validated, as in every strategy
            with self.phase("gather"):
                prepared = ug.prepare_ids(ids, g.num_nodes, device=self.device, sort=opts.sort_ids,
                                          check=not self.ids_trusted())
                out = torch.empty((prepared.n, table.row_elems), dtype=table.dtype, device=self.device)
                if prepared.n:
                    plan = self._plan(out)
                    with counts.clock.timing(prepared.n * table.row_bytes):
                        ug.launch(table, prepared, out, plan, max_programs=opts.max_programs or None,
                                  num_warps=opts.num_warps)
            nbytes = prepared.n * table.row_bytes
            counts.count_rows(prepared.n, table.row_bytes)
            counts.add_bytes("h2d", nbytes)
            counts.add_bytes("host", nbytes)  # the DMA reads each byte of host memory once; nothing is staged
            if prepared.n:
                counts.add_sector_bytes(self._sector_bytes(prepared.load_ids))
        return out

    def _plan(self, out: torch.Tensor) -> GatherPlan:
        table, opts = self._table, self.options
        assert table is not None
        key = out.data_ptr() % 16
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_gather(base_address=table.address, row_bytes=table.row_bytes, row_stride=table.row_stride,
                               out_address=out.data_ptr(), align_bytes=opts.align_bytes,
                               vector_bytes=opts.vector_bytes or None, tile_words=opts.tile_words)
            self._plans[key] = plan
        return plan

    def _sector_bytes(self, load_ids: torch.Tensor) -> int | torch.Tensor:
        """Bytes of the 32-byte sectors the rows touch (what the link carries for reads), without a host sync: an
        int where every row has the same placement, else a 0-d tensor summed on the device."""
        table = self._table
        assert table is not None
        if table.row_stride % 32 == 0:
            return sector_bytes_per_row(start_address=table.address, row_bytes=table.row_bytes) * load_ids.numel()
        head = (load_ids * table.row_stride + table.address) % 32
        return ((head + table.row_bytes + 31) // 32 * 32).sum()

    # ---- pipelined loading ----------------------------------------------------------------------------------------
    def load(
        self, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int], *, generator: torch.Generator
    ) -> Iterator[LoadedBatch]:
        """Batch i+1 is sampled and gathered on a side stream while the caller computes batch i (``prefetch``)."""
        self._require_prepared()
        if self.options.prefetch == 0:
            yield from super().load(seed_batches, fanouts, generator=generator)
            return
        pipe = SideStreamLoader(self, seed_batches, fanouts, generator, depth=self.options.prefetch)
        self._pipelines.append(pipe)
        try:
            yield from pipe
        finally:
            pipe.stop()
            self._pipelines.remove(pipe)

    # ---- counters -------------------------------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self.counters.reset(cuda=self.device.type == "cuda")

    def reset_stats(self) -> None:
        """Zero the counters; batches a prefetch thread made earlier but the caller receives later count then."""
        with self.counters.lock:
            super().reset_stats()
            self._reset_counters()

    def stats(self) -> AccessStats:
        """Counters, with extras: kernel seconds and GB/s, PCIe read estimate, CSR bytes, pinning and the plan.

        ``bytes_by_tier`` counts payload bytes; ``pcie_read_bytes_est`` counts the 32-byte sectors the reads move
        (feature rows from their addresses, ``feature_sector_bytes``; CSR reads, ``csr_sector_bytes``: see
        ``gather_plan.csr_sector_bytes``), the figure to set against NVML's PCIe RX counter.

        Reading the device-side sector sum syncs the current stream, on which every batch's sum was added after the
        batch's work (``BatchLedger.apply``), so the figure is complete."""
        with self.counters.lock:
            st, t = super().stats(), self.counters.totals
            st.rows += t.rows
            st.bytes_needed += t.bytes_needed
            for tier, n in t.bytes.items():
                st.add_bytes(tier, n)
            sectors, csr, csr_sectors = t.sector_bytes(), t.csr_bytes, t.csr_sector_bytes()
        seconds, nbytes, calls = t.clock.totals()
        plan = next(iter(self._plans.values()), None)
        st.extras.update(self._setup)
        st.extras.update({
            "kernel_calls": calls,
            "kernel_s": seconds if calls else None,
            "kernel_gbps": nbytes / seconds / 1e9 if calls and seconds > 0 else None,
            "pcie_read_bytes_est": sectors + csr_sectors,
            "feature_sector_bytes": sectors,
            "csr_bytes": csr,
            "csr_sector_bytes": csr_sectors,
            "plan": plan.describe() if plan is not None else None,
            "sort_ids": self.options.sort_ids,
            "max_programs": self.options.max_programs,
        })
        return st

    # ---- teardown -------------------------------------------------------------------------------------------------
    def _release(self) -> None:
        if self.device.type == "cuda" and cuda_available():
            torch.cuda.synchronize(self.device)  # no kernel may still read memory about to be unregistered
        self._indptr = self._indices = self._table = None
        errors = []
        for buf in reversed(self._pinned):
            try:
                buf.release()
            except PinningError as exc:
                errors.append(str(exc))
        self._pinned.clear()
        if errors:
            raise PinningError("; ".join(errors))

    def close(self) -> None:
        """Stop prefetching, wait for the device, unregister the pinned memory. Safe to call twice."""
        for pipe in list(self._pipelines):
            pipe.stop()
        self._pipelines.clear()
        self._side = None
        try:
            self._release()
        finally:
            super().close()
