"""Run one configuration (strategy x options x workload x mode x device) and return its ``Record``.

Phases are timed by the strategy (``AccessStrategy.phase``: current stream synchronised at both edges) and by this
module for ``compute`` and ``step``; the measured steps run inside one telemetry window. Warm-up steps are run and
discarded. A failure in any phase becomes a ``failed`` record naming the phase; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.device import resolve_device, synchronize
from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.suite.telemetry.envstamp import environment
from accessbench.suite.telemetry.heartbeat import Heartbeat
from accessbench.workloads.batches import random_ids, seed_batches
from accessbench.workloads.config import Workload
from accessbench.workloads.graphs import materialise
from accessbench.workloads.models import build_model
from accessbench.workloads.store import dtype_name

from .distributed import rank_and_world, rank_batches, rank_seed, wrap_model
from .records import PHASE_FIELDS, Record, config_key
from .window import StepBody, finish_idle, measure, profile_pass

__all__ = ["Config", "execute", "summarise"]

#: Seed batches are drawn from an endless seeded stream, so measured steps can be repeated (energy windows) and
#: pipelining strategies stay in steady state to the last measured step.
_ENDLESS = 1 << 62


@dataclass(frozen=True)
class Config:
    """One point of a sweep."""

    strategy: str
    workload: Workload
    mode: str
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    ranks: int = 1

    @property
    def key(self) -> str:
        """The configuration's stable key (see ``records.config_key``)."""
        return config_key(self.strategy, self.options, self.workload.identity(), self.mode, self.device, self.ranks)


class _PhaseFailure(Exception):
    def __init__(self, phase: str, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.phase, self.exc = phase, exc


def _in_phase(phase: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except _PhaseFailure:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise _PhaseFailure(phase, exc) from exc


def summarise(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Median, 10th and 90th percentile (inclusive method); all None for no values."""
    if not values:
        return None, None, None
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), q[0], q[-1]


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, AccessBenchError):
        return str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"CUDA out of memory: {str(exc).splitlines()[0]}"
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def execute(cfg: Config, *, run_id: str, telemetry_factory: Callable[[torch.device], Telemetry] | None = None,
            verify: bool = True, settings: TelemetrySettings | None = None,
            heartbeat: Heartbeat | None = None) -> Record:
    """Measure one configuration; exceptions become a failed record with the phase they happened in.

    ``settings`` say how to measure (NVTX, power sampling, energy windows, idle baseline, where traces go);
    ``heartbeat`` (in an isolated worker) is told each stage, step and phase so a crash can be located.
    """
    settings = settings or TelemetrySettings()
    rec = Record(run_id=run_id, config_key=cfg.key, strategy=cfg.strategy, options=dict(cfg.options),
                 workload=cfg.workload.name, mode=cfg.mode, device=cfg.device, ranks=cfg.ranks)
    wl = cfg.workload
    rec.steps, rec.warmup_steps = wl.steps, wl.warmup_steps
    strategy: AccessStrategy | None = None
    telemetry: Telemetry | None = None

    def stage(name: str) -> None:
        if heartbeat is not None:
            heartbeat.stage(name)

    try:
        stage("setup")
        device = _in_phase("setup", lambda: resolve_device(cfg.device))
        rec.device = str(device)
        rec.env = environment(device)
        stage("load_graph")
        t0 = time.perf_counter()
        graph = _in_phase("load_graph", lambda: materialise(wl))
        rec.load_graph_s = time.perf_counter() - t0
        rec.num_nodes, rec.num_edges, rec.feat_dim = graph.num_nodes, graph.num_edges, graph.feat_dim
        rec.dtype, rec.row_bytes = dtype_name(graph.dtype), graph.row_bytes
        stage("setup")
        options = workload_options(cfg.strategy, wl)
        options.update(cfg.options)
        strategy = _in_phase("setup", lambda: registry.create(cfg.strategy, **options))
        trace_dir = Path(settings.trace_dir) if settings.trace_dir else None
        if telemetry_factory is not None:
            telemetry = telemetry_factory(device)
            if telemetry.heartbeat is None:
                telemetry.heartbeat = heartbeat
        else:
            telemetry = Telemetry(device, settings=settings, heartbeat=heartbeat,
                                  trace_path=trace_dir / f"power_{cfg.key}.csv" if trace_dir else None)
        if telemetry.ranges_note and settings.nvtx:
            rec.notes.append(f"nvtx ranges not emitted: {telemetry.ranges_note}")
        strategy.phase_hook = telemetry.phase_hook
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        stage("prepare")
        synchronize(device)
        t0 = time.perf_counter()
        _in_phase("prepare", lambda: strategy.prepare(graph, device))
        synchronize(device)
        rec.prepare_s = time.perf_counter() - t0
        runner = {"gather": _run_gather, "sample": _run_sample, "train": _run_train}[cfg.mode]
        profile_path = None
        if settings.profile:
            if trace_dir is None:
                rec.notes.append("profile not written: no run directory for the trace")
            else:
                profile_path = trace_dir / f"trace_{cfg.key}.json"
        _in_phase(cfg.mode, lambda: runner(rec, cfg, strategy, graph, device, telemetry, verify, profile_path))
        rec.status = "ok"
        if device.type == "cuda":
            rec.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    except _PhaseFailure as failure:
        rec.status, rec.failed_phase, rec.error = "failed", failure.phase, _error_text(failure.exc)
    except Exception as exc:  # anything outside a named phase still becomes a failed row, never a traceback
        rec.status, rec.failed_phase, rec.error = "failed", "setup", _error_text(exc)
    finally:
        stage("close")
        if strategy is not None:
            try:
                strategy.close()
            except Exception as exc:  # a failing close must not hide the measurement; it is reported
                rec.notes.append(f"close() failed: {_error_text(exc)}")
        if telemetry is not None:
            telemetry.close()
        rec.peak_rss_bytes = _peak_rss_bytes()
    return rec


def _fill_phases(rec: Record, per_step: list[dict[str, float]], strategy: AccessStrategy) -> None:
    for phase in PHASE_FIELDS:
        values = [s[phase] for s in per_step if phase in s]
        if values and len(values) != len(per_step):
            rec.notes.append(f"phase {phase} ran in {len(values)} of {len(per_step)} steps")
        med, p10, p90 = summarise(values)
        setattr(rec, f"{phase}_s", med)
        setattr(rec, f"{phase}_s_p10", p10)
        setattr(rec, f"{phase}_s_p90", p90)
    if rec.mode != "sample" and rec.transfer_s is None and not strategy.has_transfer_phase:
        rec.notes.append("transfer_s null: this strategy has no separate host-to-device phase on this device")


#: Strategy options that default to a property of the workload when the strategy has them and nobody set them.
WORKLOAD_DEFAULTS: dict[str, Callable[[Workload], Any]] = {
    "memory_budget_bytes": lambda wl: wl.memory_budget_bytes,
    "presample_fanouts": lambda wl: ",".join(str(f) for f in wl.fanouts),
    "presample_batch_size": lambda wl: wl.batch_size,
}


def workload_options(strategy: str, wl: Workload) -> dict[str, Any]:
    """The workload's options for ``strategy`` (its ``[options.<strategy>]`` table), plus workload-derived defaults."""
    options = dict(wl.options.get(strategy, {}))
    fields = registry.option_fields(strategy)
    for key, derive in WORKLOAD_DEFAULTS.items():
        value = derive(wl)
        if key in fields and key not in options and value is not None:
            options[key] = value
    return options


#: Key under which a step body reports the rows it delivered (not a phase; ignored by the phase statistics).
ROWS_KEY = "_rows"


def _sync_current_stream(device: torch.device) -> None:
    """Wait for the work queued on this thread's current stream only (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def _fill_stats(rec: Record, strategy: AccessStrategy, data_s: float | None) -> None:
    st = strategy.stats()
    rec.rows, rec.bytes_needed = st.rows, st.bytes_needed
    tiers = st.bytes_by_tier
    rec.bytes_host, rec.bytes_h2d = tiers.get("host"), tiers.get("h2d")
    rec.bytes_disk, rec.bytes_peer, rec.bytes_device = tiers.get("disk"), tiers.get("peer"), tiers.get("device")
    if rec.bytes_disk is not None and st.bytes_needed:  # the field's definition (docs/RESULTS.md), every strategy
        rec.read_amplification = rec.bytes_disk / st.bytes_needed
    if st.extras.get("page_cache_dropped") is False:
        rec.notes.append("the store's pages could not be dropped from the page cache: disk numbers may be flattered")
    rec.hit_rate = st.hit_rate()
    rec.access_extras = {k: v for k, v in st.extras.items() if isinstance(v, (int, float, str, bool, type(None)))}
    if isinstance(st.extras.get("iops"), (int, float)):
        rec.iops = float(st.extras["iops"])
    elif st.io_ops is not None and data_s:
        rec.iops = st.io_ops / data_s


def _measure(rec: Record, telemetry: Telemetry, steps: int, body: StepBody, *,
             defer_idle: bool = False) -> list[dict[str, float]]:
    return measure(rec, telemetry, steps, body, defer_idle=defer_idle)


def _fill_rates(rec: Record, per_step: list[dict[str, float]], row_bytes: int) -> None:
    """Per-step delivery rates (rows of the step / its gather + transfer seconds): median and p10/p90."""
    rows_rates, byte_rates = [], []
    for s in per_step:
        data_s = s.get("gather", 0.0) + s.get("transfer", 0.0)
        rows = s.get(ROWS_KEY)
        if rows and data_s > 0:
            rows_rates.append(rows / data_s)
            byte_rates.append(rows * row_bytes / data_s / 1e9)
    rec.rows_per_s, rec.rows_per_s_p10, rec.rows_per_s_p90 = summarise(rows_rates)
    rec.feature_gbps, rec.feature_gbps_p10, rec.feature_gbps_p90 = summarise(byte_rates)


def _warmup(telemetry: Telemetry, mode: str, steps: int, body: StepBody) -> None:
    telemetry.stage("warmup")
    for i in range(steps):
        with telemetry.step(i):
            _in_phase(mode, lambda: body(i))


def _profile(rec: Record, telemetry: Telemetry, mode: str, body: StepBody, path: Path | None) -> None:
    """The optional profiled pass, after every figure of the record is taken (counters are not read again)."""
    if path is None:
        return
    steps = min(rec.steps or 1, telemetry.settings.profile_steps)
    first = rec.measured_steps or 0
    _in_phase(mode, lambda: profile_pass(rec, telemetry, steps, body, path, first_index=first))


def _run_gather(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
                telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Fresh uniform random ids each step (with repeats, unsorted): the PyTorch-Direct microbenchmark."""
    wl = cfg.workload
    rec.gather_ids = wl.gather_ids
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator().manual_seed(rank_seed(wl.seed, rank))

    def one(_: int) -> dict[str, float]:
        ids = random_ids(graph.num_nodes, wl.gather_ids, generator=gen)
        t0 = time.perf_counter()
        with strategy.collect_phases() as ph:
            out = strategy.gather(ids)
            synchronize(device)
        ph["step"] = time.perf_counter() - t0
        ph[ROWS_KEY] = float(out.shape[0])
        return ph

    _warmup(telemetry, "gather", wl.warmup_steps, one)
    if verify:
        telemetry.stage("verify")
        # seed + 1 with one rank; with several, past every rank's measurement seed (rank_seed(seed, 0..world-1))
        verify_gen = torch.Generator().manual_seed(rank_seed(wl.seed, rank) + world)
        ids = random_ids(graph.num_nodes, min(wl.gather_ids, 4096), generator=verify_gen)
        got = _in_phase("gather", lambda: strategy.gather(ids))
        rec.exact = bool(torch.equal(got.cpu(), graph.features[ids]))
        if not rec.exact:
            raise _PhaseFailure("verify", AccessBenchError("gathered rows differ from features[ids]"))
    strategy.reset_stats()
    per_step = _in_phase("gather", lambda: _measure(rec, telemetry, wl.steps, one))
    _fill_phases(rec, per_step, strategy)
    data = [s.get("gather", 0.0) + s.get("transfer", 0.0) for s in per_step]
    _fill_stats(rec, strategy, sum(data))
    _fill_rates(rec, per_step, graph.row_bytes)
    _profile(rec, telemetry, "gather", one, profile_path)


def _run_sample(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
                telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Neighbour sampling only, over the strategy's own placement of the topology."""
    wl = cfg.workload
    rec.batch_size, rec.fanouts = wl.batch_size, list(wl.fanouts)
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator(device=strategy.sample_device).manual_seed(rank_seed(wl.seed, rank))
    batches = rank_batches(seed_batches(graph, wl.batch_size, seed=wl.seed, steps=_ENDLESS), rank, world)
    edges = [0]

    def one(_: int) -> dict[str, float]:
        seeds = next(batches)
        t0 = time.perf_counter()
        with strategy.collect_phases() as ph, strategy.phase("sample"):
            batch = strategy.sample(seeds, wl.fanouts, generator=gen)
        ph["step"] = time.perf_counter() - t0
        edges[0] += batch.num_edges
        return ph

    _warmup(telemetry, "sample", wl.warmup_steps, one)
    edges[0] = 0
    strategy.reset_stats()
    per_step = _in_phase("sample", lambda: _measure(rec, telemetry, wl.steps, one))
    _fill_phases(rec, per_step, strategy)
    total = sum(s["sample"] for s in per_step)
    rec.edges_per_s = edges[0] / total if total > 0 else None
    _profile(rec, telemetry, "sample", one, profile_path)


def _run_train(rec: Record, cfg: Config, strategy: AccessStrategy, graph: GraphData, device: torch.device,
               telemetry: Telemetry, verify: bool, profile_path: Path | None = None) -> None:
    """Sample, gather, transfer, forward, backward, optimiser step; ``step_s`` is the wall time per iteration."""
    wl = cfg.workload
    rec.batch_size, rec.fanouts = wl.batch_size, list(wl.fanouts)
    if graph.labels is None:
        raise _PhaseFailure("setup", AccessBenchError(f"workload {wl.name!r}: train mode needs node labels"))
    num_classes = graph.num_classes or int(graph.labels.max()) + 1
    torch.manual_seed(wl.seed)
    model = build_model(wl.model, in_dim=graph.feat_dim, hidden=wl.hidden, out_dim=num_classes,
                        num_layers=len(wl.fanouts)).to(device)
    model = wrap_model(model, device, cfg.ranks)  # several ranks: gradients all-reduced (DDP), part of compute
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = graph.labels.to(device) if device.type == "cuda" else graph.labels
    rank, world = rank_and_world(cfg.ranks)
    gen = torch.Generator(device=strategy.sample_device).manual_seed(rank_seed(wl.seed, rank))
    loader: Iterator = strategy.load(
        rank_batches(seed_batches(graph, wl.batch_size, seed=wl.seed, steps=_ENDLESS), rank, world), wl.fanouts,
        generator=gen)
    edges = [0]
    overlapped = [False]
    checked = [not verify]

    def one(_: int) -> dict[str, float]:
        t0 = time.perf_counter()
        loaded = _in_phase("load", lambda: next(loader))
        ph = dict(loaded.phase_s)
        ph[ROWS_KEY] = float(loaded.features.shape[0])
        overlapped[0] |= loaded.overlapped
        if not checked[0]:
            rec.exact = bool(torch.equal(loaded.features.cpu(), graph.features[loaded.batch.node_ids.cpu()]))
            checked[0] = True
            if not rec.exact:
                raise _PhaseFailure("verify", AccessBenchError("gathered rows differ from features[ids]"))
        with strategy.phase_hook("compute"):
            _sync_current_stream(device)  # not the device: a side stream may be loading the next batch
            tc = time.perf_counter()
            x = loaded.features
            if x.dtype != torch.float32:
                x = x.float()
            out = model(x, loaded.batch)
            loss = torch.nn.functional.cross_entropy(out, labels[loaded.batch.seeds])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync_current_stream(device)
        end = time.perf_counter()
        ph["compute"] = end - tc
        ph["step"] = end - t0
        edges[0] += loaded.batch.num_edges
        return ph

    try:
        warmup = wl.warmup_steps
        if verify and warmup == 0:  # the exactness check (and first-call compiles) must not land in a measured step
            warmup = 1
            rec.notes.append("one unmeasured step ran first to verify exactness (warmup_steps = 0)")
        _warmup(telemetry, "train", warmup, one)
        strategy.reset_stats()
        edges[0] = 0
        per_step = _in_phase("train", lambda: _measure(rec, telemetry, wl.steps, one, defer_idle=True))
        rec.overlapped = overlapped[0]
        if overlapped[0]:
            rec.notes.append("sample/gather/transfer ran in the background: their times overlap compute; step_s is"
                             " the wall time per iteration")
        _fill_phases(rec, per_step, strategy)
        data = [s.get("gather", 0.0) + s.get("transfer", 0.0) for s in per_step]
        _fill_stats(rec, strategy, sum(data))
        _fill_rates(rec, per_step, graph.row_bytes)
        sample_total = sum(s.get("sample", 0.0) for s in per_step)
        rec.edges_per_s = edges[0] / sample_total if sample_total > 0 else None
        _profile(rec, telemetry, "train", one, profile_path)
    finally:
        close = getattr(loader, "close", None)
        if close is not None:
            close()
    finish_idle(rec, telemetry)  # after the loader stopped: no prefetch or pipeline work in the idle window


def record_fields() -> list[str]:
    """Every field a record has, in order."""
    return [f.name for f in dataclasses.fields(Record)]
