"""``out-of-core``: feature rows live in a file on disk and are read per batch, the ways the published systems do it.

- ``io=mmap``: the store memory-mapped, the page cache decides (PyG/DGL on disk);
- ``io=direct``: ``O_DIRECT`` page-aligned reads, ``depth`` in flight, rows sharing or adjoining pages coalesced
  (with ``lookahead_bytes``: Ginex's Belady-optimal cache over a superbatch);
- ``layout=packed``: an offline pass samples the next ``superbatch`` batches and writes each batch's uncached rows
  contiguously, so a batch is one large read (DiskGNN), with static hot caches in device and host memory;
- ``io=kvikio``: GPUDirect Storage reads into device memory where kvikio and GDS are present.

Topology (CSR) stays memory-mapped in host memory and is sampled on the CPU; only features come from disk through
this strategy's readers. ``load`` plans ``superbatch`` batches ahead (sampling them with the caller's generator, in
order), then serves exactly those batches; ``gather(ids)`` serves arbitrary ids from the caches and the rowwise store.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels.base import AccessStrategy, LoadedBatch, check_ids
from accessbench.kernels.device import cuda_available
from accessbench.kernels.errors import StoreError, StrategyUnavailable
from accessbench.kernels.registry import register
from accessbench.kernels.sampling import sample_blocks, validate_fanouts
from accessbench.kernels.types import GraphData, SampledBatch

from .accounting import DiskTotals
from .assemble import Assembler, Part
from .direct import check_odirect
from .hotcache import StaticCache, rank_by_degree, rank_by_presample
from .kvikio_io import kvikio_status
from .options import OutOfCoreOptions
from .packing import write_packed
from .pagecache import drop_file_pages, resident_fraction
from .pipeline import Pipeline
from .planner import BatchPlan, SuperbatchPlanner, held_slots
from .sources import RowSource, SegmentSource, open_file

__all__ = ["OutOfCore", "OutOfCoreOptions"]


@register("out-of-core")
class OutOfCore(AccessStrategy):
    """Features read from SSD per batch (mmap, O_DIRECT or GDS), rowwise or packed, behind static and look-ahead caches."""

    Options = OutOfCoreOptions
    samples_on_host = True

    def __init__(self, options: OutOfCoreOptions | None = None) -> None:
        super().__init__(options)
        ok, reason = self.option_availability(self.options)
        if not ok:
            raise StrategyUnavailable(f"out-of-core: {reason}")
        self._asm: Assembler | None = None
        self._prep: RowSource | None = None
        self._planner: SuperbatchPlanner | None = None
        self._totals = DiskTotals()
        self._persist: dict[str, Any] = {"preprocess_s": 0.0, "packed_bytes": 0, "packed_bytes_written": 0}
        self._packed_dir: Path | None = None
        self._packed_files: list[Path] = []
        self._superbatches = 0
        self._presample_pending = False
        self._streams: list[Any] = []
        self._pipes: list[Pipeline] = []  # pipelines of open ``load`` iterators, stopped before files are closed

    # ---- capabilities -------------------------------------------------------------------------------------------
    @classmethod
    def option_availability(cls, options: OutOfCoreOptions) -> tuple[bool, str]:
        """Whether these options can run here (``availability()`` is per strategy; io=kvikio depends on kvikio+GDS)."""
        if options.io == "kvikio":
            return kvikio_status(options.kvikio_compat)
        return True, "available"

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    def prepare(self, graph: GraphData, device: torch.device) -> None:
        """Open the feature file, build the static hot cache (degree ranking), drop the store's cached pages."""
        opts: OutOfCoreOptions = self.options
        ff = graph.feature_file
        if ff is None:
            raise StrategyUnavailable("out-of-core reads the feature file itself, but this graph lives only in memory "
                                      "(no feature_file): open it from a store on disk")
        if device.type == "cuda" and not cuda_available():
            raise StrategyUnavailable("out-of-core: CUDA device requested but torch sees none")
        if opts.device_cache_bytes and device.type != "cuda":
            raise StrategyUnavailable("out-of-core: device_cache_bytes needs a CUDA compute device (the device tier "
                                      f"lives in GPU memory); the device here is {device}")
        if opts.io == "kvikio" and device.type != "cuda":
            raise StrategyUnavailable("out-of-core: io=kvikio reads into GPU memory and needs a CUDA compute device")
        size = Path(ff.path).stat().st_size if Path(ff.path).is_file() else -1
        need = ff.offset + (graph.num_nodes - 1) * ff.row_stride + ff.row_bytes if graph.num_nodes else 0
        if size < need:
            raise StoreError(f"feature file {ff.path} is missing or truncated ({size} bytes, {need} needed)")
        if opts.io == "direct":
            check_odirect(ff.path)  # say here, naming the filesystem, if it refuses O_DIRECT (not EINVAL later)
        if ff.row_bytes != graph.row_bytes:
            raise StoreError(f"feature file rows are {ff.row_bytes} B but the graph's rows are {graph.row_bytes} B")
        self.graph, self.device = graph, device
        common: dict[str, Any] = {"path": Path(ff.path), "offset": ff.offset, "row_stride": ff.row_stride,
                                  "row_bytes": ff.row_bytes, "dtype": graph.dtype, "feat_dim": graph.feat_dim,
                                  "max_io_bytes": opts.max_io_bytes, "device": device}
        rows = RowSource(open_file(ff.path, opts.io, depth=opts.depth, advice=opts.mmap_advice,
                                   kvikio_compat=opts.kvikio_compat), **common)
        try:
            self._prep = RowSource(open_file(ff.path, "direct", depth=opts.depth), **common)
            self._persist["preprocess_reader"] = "direct"
        except StrategyUnavailable:
            self._prep = RowSource(open_file(ff.path, "mmap"), **common)
            self._persist["preprocess_reader"] = "mmap (O_DIRECT refused here)"
        stages = 1 if device.type == "cuda" and opts.io != "kvikio" else 0
        inflight = (2 * (stages + 1) + 1 + stages) if opts.pipeline else 1
        self._asm = Assembler(device=device, dtype=graph.dtype, feat_dim=graph.feat_dim, row_bytes=graph.row_bytes,
                              rows_src=rows, read_buffer_bytes=opts.read_buffer_bytes,
                              budget=opts.memory_budget_bytes, inflight=inflight)
        la_rows = min(opts.lookahead_bytes // graph.row_bytes, graph.num_nodes)
        if la_rows:
            self._asm.lookahead = torch.empty((la_rows, graph.feat_dim), dtype=graph.dtype,
                                              device=device if opts.io == "kvikio" else "cpu")
            self._asm.phys = torch.full((la_rows,), -1, dtype=torch.int64)
        self._planner = SuperbatchPlanner(sample=lambda s: s, static_lookup=None, lookahead_rows=la_rows,
                                          num_nodes=graph.num_nodes)
        if device.type == "cuda":
            self._streams = [torch.cuda.Stream(device) for _ in range(2)]
        self._persist.update(self._describe(graph))
        if opts.host_cache_bytes or opts.device_cache_bytes:
            if opts.hot == "degree":
                with self._preprocessing():
                    self._build_static(rank_by_degree(graph.indices, graph.num_nodes))
            else:
                self._presample_pending = True
        if opts.drop_page_cache:
            self.drop_page_cache()

    def _describe(self, graph: GraphData) -> dict[str, Any]:
        opts: OutOfCoreOptions = self.options
        pinned = self.device.type == "cuda"
        return {
            "io": opts.io, "layout": opts.layout, "topology": "CSR memory-mapped in host memory, sampled on the CPU",
            "store_bytes": graph.feature_bytes, "row_bytes": graph.row_bytes,
            "host_cache_memory": "pinned" if pinned else "pageable (no CUDA: plain host memory)",
            "lookahead_rows": self._planner.lookahead_rows if self._planner else 0,
            "lookahead_memory": "device" if opts.io == "kvikio" else ("host" if not pinned else "host (pageable)"),
            "memory_budget_bytes": opts.memory_budget_bytes,
            "kvikio_mode": kvikio_status(opts.kvikio_compat)[1] if opts.io == "kvikio" else None,
        }

    @contextlib.contextmanager
    def _preprocessing(self) -> Iterator[None]:
        start = time.perf_counter()
        prep = self._prep
        b0 = prep.counter.snapshot()[0] if prep else 0
        try:
            yield
        finally:
            self._persist["preprocess_s"] += time.perf_counter() - start
            if prep is not None:
                self._persist["preprocess_disk_bytes"] = self._persist.get("preprocess_disk_bytes", 0) + \
                    prep.counter.snapshot()[0] - b0

    def _fetch_host(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (unique) in host memory, read by the preprocessing reader (not counted as serving)."""
        assert self._prep is not None
        return self._prep.rows(ids, buffer_bytes=self.options.read_buffer_bytes)

    def _build_static(self, ranking: torch.Tensor) -> None:
        g, opts, asm = self.graph, self.options, self._asm
        assert g is not None and asm is not None and self._planner is not None
        pinned = self.device.type == "cuda"
        cache = StaticCache(ranking=ranking, num_nodes=g.num_nodes, feat_dim=g.feat_dim, dtype=g.dtype,
                            row_bytes=g.row_bytes, device_bytes=opts.device_cache_bytes,
                            host_bytes=opts.host_cache_bytes, device=self.device, pinned=pinned)
        cache.fill(self._fetch_host)
        asm.static = cache
        self._planner.static_lookup = cache.lookup
        self._persist.update({"hot": opts.hot, "device_cache_rows": cache.n_dev, "host_cache_rows": cache.n_host})
        if self._prep is not None:
            self._prep.release()

    def drop_page_cache(self) -> dict[str, Any]:
        """Drop the store's and the current packed file's pages from the page cache (mmap readers are re-mapped);
        records and returns what happened. Call it between runs, not while ``load`` is iterating."""
        assert self.graph is not None and self.graph.feature_file is not None and self._asm is not None
        start = time.perf_counter()
        maps = [s.file for s in (self._asm.rows_src, self._asm.segments) if s is not None and hasattr(s.file, "open")]
        for m in maps:
            m.close()
        paths = [Path(self.graph.feature_file.path)] + self._packed_files[-1:]
        results = [drop_file_pages(p).as_dict() for p in paths]
        for m in maps:
            m.open()
        self._persist["page_cache_drop"] = results
        self._persist["page_cache_drop_s"] = self._persist.get("page_cache_drop_s", 0.0) + time.perf_counter() - start
        self._persist["page_cache_dropped"] = all(r["ok"] for r in results)
        return {"ok": self._persist["page_cache_dropped"], "files": results}

    def _cap_page_cache(self) -> None:
        """``page_cache_cap``: drop the store's pages once they pass the budget left after the strategy's caches."""
        opts, asm, g = self.options, self._asm, self.graph
        if not opts.page_cache_cap or asm is None or g is None or g.feature_file is None:
            return
        allowance = opts.memory_budget_bytes - asm.peak_host_bytes
        frac = resident_fraction(g.feature_file.path)
        if frac is not None and frac * Path(g.feature_file.path).stat().st_size > allowance:
            asm.rows_src.file.close()  # type: ignore[union-attr]
            drop_file_pages(g.feature_file.path)
            asm.rows_src.file.open()  # type: ignore[union-attr]
            self._persist["page_cache_cap_drops"] = self._persist.get("page_cache_cap_drops", 0) + 1

    def close(self) -> None:
        """Stop open ``load`` pipelines, close files, drop caches and buffers, remove packed files unless
        ``keep_packed``."""
        for pipe in list(self._pipes):  # a producer still reading would otherwise see its files closed under it
            self._stop_pipeline(pipe)
        if self._asm is not None:
            self._asm.rows_src.close()
            if self._asm.segments is not None:
                self._asm.segments.close()
            self._asm = None
        if self._prep is not None:
            self._prep.close()
            self._prep = None
        if self._packed_dir is not None and not self.options.keep_packed:
            shutil.rmtree(self._packed_dir, ignore_errors=True)
        super().close()

    # ---- sampling and arbitrary gathers -------------------------------------------------------------------------
    def sample(self, seeds: torch.Tensor, fanouts: Sequence[int], *, generator: torch.Generator) -> SampledBatch:
        """Uniform sampling on the CPU over the memory-mapped CSR."""
        g = self._require_prepared()
        seeds = check_ids(seeds.cpu(), g.num_nodes)
        return sample_blocks(g.indptr, g.indices, seeds, fanouts, generator)

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """``features[ids]`` on the compute device: static caches, look-ahead buffer (as it is now), then the rowwise
        store for the rest. Exact, caller's order, duplicates allowed."""
        g = self._require_prepared()
        asm = self._asm
        assert asm is not None and self._planner is not None
        with self.phase("gather"):  # moving the ids to the host and validating them is part of the gather
            ids = self.valid_ids(ids.cpu(), g.num_nodes)
            uniq, inv = torch.unique(ids, return_inverse=True)
            slot = asm.static.lookup(uniq) if asm.static is not None else torch.full_like(uniq, -1)
            residual = torch.nonzero(slot < 0).flatten()
            la_pos = la_slots = torch.empty(0, dtype=torch.int64)
            if residual.numel() and self._planner.lookahead_rows:
                s = held_slots(asm.phys, uniq[residual])
                la_pos, la_slots, residual = residual[s >= 0], s[s >= 0], residual[s < 0]
            part = asm.assemble(uniq, static_slot=slot, la_pos=la_pos, la_slots=la_slots, disk_pos=residual,
                                inflight=1)
            if part.final:  # back to the caller's order (duplicates expanded) on the compute device
                out = part.rows[inv.to(part.rows.device)]
        if not part.final:
            with self.phase("transfer"):
                rows = asm.finalize(part)
                out = rows[inv.to(rows.device)]
        part.delta.rows = ids.numel()  # the caller asked for this many rows (duplicates included)
        self._apply(part)
        self._cap_page_cache()
        return out

    # ---- pipelined loading --------------------------------------------------------------------------------------
    def load(self, seed_batches: Iterable[torch.Tensor], fanouts: Sequence[int], *,
             generator: torch.Generator) -> Iterator[LoadedBatch]:
        """Plan ``superbatch`` batches ahead, (packed: write their segments), then serve exactly those batches; disk
        reads, host-to-device copies and the caller's compute overlap through depth-2 queues when ``pipeline``."""
        self._require_prepared()
        fanouts = validate_fanouts(fanouts)
        source = self._produce(iter(seed_batches), fanouts, generator)
        if not self.options.pipeline:
            for item in source:
                yield self._deliver(self._transfer(item), overlapped=False)
            return
        stages = [self._transfer] if self.device.type == "cuda" and self.options.io != "kvikio" else []
        if self._streams:  # the workers' streams start after what the caller queued (e.g. a gather's reads)
            main = torch.cuda.current_stream(self.device)
            for stream in self._streams:
                stream.wait_stream(main)
        pipe = Pipeline(source, stages, depth=2, wrap=self._stream_for)
        self._pipes.append(pipe)
        try:
            for item in pipe:
                yield self._deliver(item, overlapped=True)
        finally:
            self._stop_pipeline(pipe)

    def _stop_pipeline(self, pipe: Pipeline) -> None:
        """Stop ``pipe``'s threads, then let its streams' queued work (look-ahead writes, copies) finish."""
        pipe.close()
        for stream in self._streams:
            stream.synchronize()
        if pipe in self._pipes:
            self._pipes.remove(pipe)

    def _stream_for(self, stage: int) -> Any:
        if self._streams:
            return torch.cuda.stream(self._streams[min(stage, len(self._streams) - 1)])
        return contextlib.nullcontext()

    def _produce(self, seeds_iter: Iterator[torch.Tensor], fanouts: list[int],
                 generator: torch.Generator) -> Iterator[tuple[BatchPlan, Part | torch.Tensor, dict[str, float], Any]]:
        planner = self._planner
        assert planner is not None
        planner.sample = lambda seeds: self.sample(seeds, fanouts, generator=generator)
        while True:
            chunk = list(itertools.islice(seeds_iter, self.options.superbatch))
            if not chunk:
                return
            if self._presample_pending:
                self._presample(fanouts, batch_size=int(chunk[0].numel()))
            start = time.perf_counter()
            plans = planner.plan(chunk, held=self._asm.phys if planner.lookahead_rows else None)  # type: ignore[union-attr]
            sampled = sum(p.sample_s for p in plans)
            self._persist["preprocess_s"] += time.perf_counter() - start - sampled
            if self.options.layout == "packed":
                self._pack(plans)
            self._superbatches += 1
            for p in plans:
                with self.collect_phases() as phase_s, self.phase("gather"):
                    part = self._asm.assemble(  # type: ignore[union-attr]
                        p.node_ids.cpu(), static_slot=p.static_slot, la_pos=p.la_hit_pos,
                        la_slots=p.la_hit_slots, disk_pos=p.disk_pos, segment=p.segment,
                        admit_pos=p.admit_pos, admit_slots=p.admit_slots, relocate=p.relocate)
                phase_s["sample"] = p.sample_s
                self._cap_page_cache()
                event = None
                if self.device.type == "cuda":  # device work of this thread's stream, for the next stage to wait on
                    event = torch.cuda.Event()
                    event.record(torch.cuda.current_stream(self.device))
                yield p, part, phase_s, event

    def _transfer(self, item: tuple[BatchPlan, Any, dict[str, float], Any]) -> tuple[Any, ...]:
        p, part, phase_s, event = item
        if not isinstance(part, Part):
            return item
        asm = self._asm
        assert asm is not None
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
            event = None
        with self.collect_phases() as extra:
            with self.phase("transfer") if not part.final else contextlib.nullcontext():
                rows = asm.finalize(part)
        if rows.is_cuda:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
        for k, v in extra.items():
            phase_s[k] = phase_s.get(k, 0.0) + v
        return p, (part, rows), phase_s, event

    def _deliver(self, item: tuple[Any, ...], *, overlapped: bool) -> LoadedBatch:
        p, payload, phase_s, event = item
        part, rows = payload if isinstance(payload, tuple) else (payload, payload.rows)
        if event is not None:
            main = torch.cuda.current_stream(self.device)
            main.wait_event(event)
            rows.record_stream(main)
        self._apply(part)
        with self.collect_phases() as extra:
            batch = self.blocks_to_device(p.batch)
        for k, v in extra.items():
            phase_s[k] = phase_s.get(k, 0.0) + v
        return LoadedBatch(batch, rows, phase_s, overlapped)

    def _apply(self, part: Part) -> None:
        caches = tuple(t for t, on in (("device", self.options.device_cache_bytes), ("host", self.options.host_cache_bytes),
                                       ("lookahead", self.options.lookahead_bytes)) if on)
        self._totals.apply(part.delta, self._stats, mmap=self.options.io == "mmap", caches=caches)

    # ---- preprocessing: pre-sampled hot set, packing ------------------------------------------------------------
    def _presample(self, fanouts: list[int], *, batch_size: int) -> None:
        g, opts = self.graph, self.options
        assert g is not None
        self._presample_pending = False
        pool = g.train_ids if g.train_ids is not None and g.train_ids.numel() else torch.arange(g.num_nodes)
        gen = torch.Generator().manual_seed(opts.presample_seed)
        with self._preprocessing():
            ranking = rank_by_presample(g.indptr, g.indices, num_nodes=g.num_nodes, seed_pool=pool,
                                        batch_size=batch_size, fanouts=fanouts, batches=opts.presample_batches,
                                        generator=gen)
            self._build_static(ranking)
        if opts.drop_page_cache:
            self.drop_page_cache()

    def _pack(self, plans: list[BatchPlan]) -> None:
        g, opts, asm = self.graph, self.options, self._asm
        assert g is not None and g.feature_file is not None and asm is not None
        with self._preprocessing():
            if self._packed_dir is None:
                base = Path(opts.packed_dir) if opts.packed_dir else Path(g.feature_file.path).parent.parent
                base.mkdir(parents=True, exist_ok=True)
                self._packed_dir = Path(tempfile.mkdtemp(prefix=".accessbench-packed-", dir=base))
            path = self._packed_dir / f"superbatch-{self._superbatches:05d}.pack"
            index = write_packed(path, plans, g, self._fetch_host)
            if asm.segments is not None:
                asm.segments.close()
            if not opts.keep_packed:
                for old in self._packed_files:
                    old.unlink(missing_ok=True)
                    old.with_suffix(".idx").unlink(missing_ok=True)
            self._packed_files.append(path)
            asm.segments = SegmentSource(
                open_file(path, opts.io, depth=opts.depth, advice=opts.mmap_advice, kvikio_compat=opts.kvikio_compat),
                index, dtype=g.dtype, feat_dim=g.feat_dim, max_io_bytes=opts.max_io_bytes, device=self.device,
                verify=opts.verify_packed)
            if self._prep is not None:
                self._prep.release()
            self._persist["packed_bytes"] = index.disk_bytes
            self._persist["packed_bytes_written"] += index.disk_bytes
            self._persist["packed_bytes_peak"] = max(self._persist.get("packed_bytes_peak", 0), index.disk_bytes)
            self._persist["packed_dir"] = str(self._packed_dir)
        if opts.drop_page_cache:
            self.drop_page_cache()

    # ---- counters -----------------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Zero the per-run counters (preprocessing, storage and page-cache records are kept)."""
        super().reset_stats()
        self._totals = DiskTotals()

    def stats(self) -> Any:
        """Counters plus extras: disk bytes (own and kernel), read amplification, IOPS, hit rate per tier,
        preprocessing seconds, extra storage, page-cache drop results, memory use."""
        s = super().stats()
        g = self.graph
        if g is None:
            return s
        s.extras.update(self._persist)
        s.extras.update(self._totals.extras(row_bytes=g.row_bytes, mmap=self.options.io == "mmap", stats=s))
        s.extras["extra_storage_ratio"] = (self._persist.get("packed_bytes_peak", 0) / g.feature_bytes
                                           if g.feature_bytes else None)
        if self._asm is not None:
            s.extras["host_bytes_peak"] = self._asm.peak_host_bytes
        return s
