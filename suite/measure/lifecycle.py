"""The lifecycle of one configuration: set up, load the graph, create and prepare the strategy, run its mode
(``gather``, ``sample`` or ``train``: one module each), close; return its ``Record``.

Phases are timed by the strategy (``AccessStrategy.phase``: current stream synchronised at both edges) and by the
mode modules for ``compute`` and ``step``; the measured steps run inside one telemetry window (``window``). Warm-up
steps are run and discarded. A failure in any phase becomes a ``failed`` record naming the phase; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accessbench import schema
from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.device import resolve_device, synchronize
from accessbench.kernels.errors import AccessBenchError
from accessbench.kernels.sampling import sampler_backend
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.suite.telemetry.envstamp import environment
from accessbench.suite.telemetry.heartbeat import Heartbeat
from accessbench.workloads.config import Workload
from accessbench.workloads.graphs import materialise
from accessbench.workloads.store import dtype_name

from . import ceiling, gather, sample, simulate, train
from .ceiling import is_ceiling
from .config import Config
from .phases import PhaseFailure, in_phase
from .records import Record

__all__ = ["Config", "execute", "record_fields", "workload_options"]

MODES: dict[str, Callable[..., None]] = {"gather": gather.run, "sample": sample.run, "train": train.run}


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


def _fill_ceiling(rec: Record, run_dir: Path | None) -> None:
    """The ceiling that bounds this row's feature_gbps, from the run directory's probe.json, and the fraction
    reached (left null, with a note, where the probe lacks it)."""
    if run_dir is None or rec.feature_gbps is None:
        return
    try:
        probe = json.loads((run_dir / schema.PROBE_FILE).read_text())
    except (OSError, ValueError):
        return  # no probe in this run (--no-probe, or a study): the report says ceilings are not shown
    key = schema.relevant_ceiling(dataclasses.asdict(rec))
    entry = probe.get(key) if isinstance(probe, dict) else None
    value = entry.get("value") if isinstance(entry, dict) else None
    rec.ceiling_key = key
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        rec.ceiling_gbps = float(value)
        rec.ceiling_fraction = rec.feature_gbps / float(value)
    else:
        rec.notes.append(f"ceiling {key} not in probe.json: ceiling_fraction not computed")


def execute(cfg: Config, *, run_id: str, telemetry_factory: Callable[[torch.device], Telemetry] | None = None,
            verify: bool = True, settings: TelemetrySettings | None = None,
            heartbeat: Heartbeat | None = None) -> Record:
    """Measure one configuration; exceptions become a failed record with the phase they happened in.

    ``settings`` say how to measure (NVTX, power sampling, energy windows, idle baseline, where traces go);
    ``heartbeat`` (in an isolated worker) is told each stage, step and phase so a crash can be located.
    """
    settings = settings or TelemetrySettings()
    rec = cfg.new_record(run_id)
    wl = cfg.workload
    rec.steps, rec.warmup_steps = wl.steps, wl.warmup_steps
    strategy: AccessStrategy | None = None
    telemetry: Telemetry | None = None

    def stage(name: str) -> None:
        if heartbeat is not None:
            heartbeat.stage(name)

    try:
        stage("setup")
        device = in_phase("setup", lambda: resolve_device(cfg.device))
        rec.device = str(device)
        rec.env = environment(device)
        trace_dir = Path(settings.trace_dir) if settings.trace_dir else None
        if cfg.mode == "simulate":  # a simulated row: trace replay, labelled, never a measurement
            stage("simulate")
            in_phase("simulate", lambda: simulate.run(rec, cfg, trace_dir))
            rec.status = "ok"
            return rec
        stage("load_graph")
        t0 = time.perf_counter()
        graph = in_phase("load_graph", lambda: materialise(wl))
        rec.load_graph_s = time.perf_counter() - t0
        rec.num_nodes, rec.num_edges, rec.feat_dim = graph.num_nodes, graph.num_edges, graph.feat_dim
        rec.dtype, rec.row_bytes = dtype_name(graph.dtype), graph.row_bytes
        stage("setup")
        options = {} if is_ceiling(cfg.strategy) else workload_options(cfg.strategy, wl)
        options.update(cfg.options)
        if not is_ceiling(cfg.strategy):
            strategy = in_phase("setup", lambda: registry.create(cfg.strategy, **options))
        if telemetry_factory is not None:
            telemetry = telemetry_factory(device)
            if telemetry.heartbeat is None:
                telemetry.heartbeat = heartbeat
        else:
            telemetry = Telemetry(device, settings=settings, heartbeat=heartbeat,
                                  trace_path=trace_dir / f"power_{cfg.key}.csv" if trace_dir else None)
        if telemetry.ranges_note and settings.nvtx:
            rec.notes.append(f"nvtx ranges not emitted: {telemetry.ranges_note}")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if strategy is None:  # a ceiling row: measured on the same ids, no strategy to prepare
            in_phase(cfg.mode, lambda: ceiling.run(rec, cfg, graph, device, telemetry))
            rec.status = "ok"
            return rec
        strategy.phase_hook = telemetry.phase_hook
        if options.get("page_cache_cap"):
            rec.memory_cap_method = "page-drop emulation"
        stage("prepare")
        synchronize(device)
        t0 = time.perf_counter()
        in_phase("prepare", lambda: strategy.prepare(graph, device))
        synchronize(device)
        rec.prepare_s = time.perf_counter() - t0
        rec.sampler = in_phase("setup", lambda: sampler_backend(strategy.sample_device))
        runner = MODES[cfg.mode]
        profile_path = None
        if settings.profile:
            if trace_dir is None:
                rec.notes.append("profile not written: no run directory for the trace")
            else:
                profile_path = trace_dir / f"trace_{cfg.key}.json"
        in_phase(cfg.mode, lambda: runner(rec, cfg, strategy, graph, device, telemetry, verify, profile_path))
        _fill_ceiling(rec, trace_dir)
        rec.status = "ok"
        if device.type == "cuda":
            rec.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    except PhaseFailure as failure:
        rec.status, rec.failed_phase, rec.error = "failed", failure.phase, _error_text(failure.exc)
    except Exception as exc:  # noqa: BLE001 - anything outside a named phase still becomes a failed row, never a traceback
        rec.status, rec.failed_phase, rec.error = "failed", "setup", _error_text(exc)
    finally:
        stage("close")
        if strategy is not None:
            try:
                strategy.close()
            except Exception as exc:  # noqa: BLE001 - a failing close must not hide the measurement; it is reported
                rec.notes.append(f"close() failed: {_error_text(exc)}")
        if telemetry is not None:
            telemetry.close()
        rec.peak_rss_bytes = _peak_rss_bytes()
    return rec


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


def record_fields() -> list[str]:
    """Every field a record has, in order."""
    return [f.name for f in dataclasses.fields(Record)]

