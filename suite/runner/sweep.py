"""Sweeps: expand strategies x option sets x workloads x modes into configurations, run each, append its record.

Each configuration runs in its own worker process (``accessbench.suite.runner.isolation``) unless the sweep says ``isolate=False``;
a crash, hang or kill becomes a ``failed`` row and the sweep goes on. Records are appended and fsynced one per
configuration as it finishes, so an interrupted sweep keeps every row it measured; ``resume`` skips configurations
whose key already has a finished row in the run directory, after cutting a torn last line left by a kill.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accessbench.kernels import registry
from accessbench.kernels.errors import AccessBenchError
from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.measure.processes import merge_processes
from accessbench.suite.measure.records import RESULTS_FILE, Record, append_record, read_records
from accessbench.suite.telemetry.settings import TelemetrySettings
from accessbench.workloads.config import Workload

from .isolation import DEFAULT_TIMEOUT_S, LOG_DIR, WORK_DIR, record_from_dict, run_isolated
from .rundir import unique_dir

__all__ = [
    "PROFILE_FIRST",
    "Executor",
    "RunError",
    "Sweep",
    "expand_matrix",
    "finished_keys",
    "parse_option_sweeps",
    "prepare_run_dir",
    "repair_tail",
    "run_sweep",
]

#: ``Sweep.profile`` value that profiles the first configuration run, whatever its strategy.
PROFILE_FIRST = "*"


class RunError(AccessBenchError):
    """A sweep that cannot start (bad output directory, bad option sweep)."""


def parse_option_sweeps(items: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """``["cpu-centric:prefetch=0,2", ...]`` -> ``{"cpu-centric": {"prefetch": ["0", "2"]}}``."""
    out: dict[str, dict[str, list[str]]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        strategy, colon, key = head.partition(":")
        if not sep or not colon or not strategy or not key or value == "":
            raise RunError(f"bad option {item!r}; expected STRATEGY:OPTION=VALUE[,VALUE...]")
        registry.parse_options(strategy, {})  # unknown strategy -> a clear error
        if key not in registry.option_fields(strategy):
            valid = ", ".join(sorted(registry.option_fields(strategy))) or "(none)"
            raise RunError(f"unknown option {key!r} for strategy {strategy!r}; valid: {valid}")
        values = [v.strip() for v in value.split(",")]
        for v in values:
            registry.parse_options(strategy, {key: v})  # each value must be valid
        out.setdefault(strategy, {})[key] = values
    return out


def expand_matrix(strategies: Sequence[str], workloads: Sequence[Workload], modes: Sequence[str | None],
                  device: str, sweeps: Mapping[str, Mapping[str, Sequence[Any]]] | None = None) -> list[Config]:
    """Every configuration of the sweep, in a stable order (workload, mode, strategy, options)."""
    sweeps = sweeps or {}
    configs: list[Config] = []
    for wl in workloads:
        for mode in modes:
            for name in strategies:
                axes = sweeps.get(name, {})
                keys = sorted(axes)
                for combo in itertools.product(*(axes[k] for k in keys)) if keys else [()]:
                    opts = {k: registry.parse_options(name, {k: v}).__getattribute__(k) for k, v in zip(keys, combo)}
                    configs.append(Config(strategy=name, workload=wl, mode=mode or wl.mode, device=device,
                                          options=opts))
    return configs


def prepare_run_dir(out: Path | None, *, workload: str, base: Path = Path("results")) -> Path:
    """The run directory (created); a new, unique timestamped one under ``results/`` when ``out`` is None."""
    try:
        path = out if out is not None else unique_dir(base, f"{time.strftime('%Y%m%d-%H%M%S')}-{workload}")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"output directory {path} is not writable: {exc.strerror or exc}") from None
    return path


def _complete_row(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def repair_tail(results: Path) -> int:
    """Make the file end on a complete line; returns the bytes removed.

    A last line without its newline is a row torn by a kill mid-write: it is cut off (the configuration then runs
    again on resume). A last line that parses as a whole row only lacks the newline, which is added instead.
    """
    if not results.exists() or results.stat().st_size == 0:
        return 0
    with open(results, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.seek(keep)
        if _complete_row(f.read(size - keep)):
            f.seek(size)
            f.write(b"\n")
            removed = 0
        else:
            f.truncate(keep)
            removed = size - keep
        f.flush()
        os.fsync(f.fileno())
        return removed


def finished_keys(results: Path, *, rerun_failed: bool = False) -> set[str]:
    """Keys of configurations with a finished row (ok, skipped, and failed unless ``rerun_failed``)."""
    rows, _ = read_records(results)
    final = ("ok", "skipped") if rerun_failed else ("ok", "failed", "skipped")
    return {r["config_key"] for r in rows if r.get("config_key") and r.get("status") in final}


@dataclass
class Sweep:
    """A sweep to run into ``run_dir``; ``skipped`` lists configurations recorded as skipped with a reason.

    ``isolate``: one worker process per configuration (else in this process, for debugging and tests).
    ``timeout_s``: per-configuration limit for isolated workers (None: none). ``telemetry``: how to measure
    (its ``trace_dir`` defaults to ``run_dir``). ``profile``: a strategy name, or ``PROFILE_FIRST``: the first such
    configuration run also writes a torch.profiler trace.
    """

    configs: list[Config]
    run_dir: Path
    resume: bool = False
    skipped: list[tuple[Config, str]] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    isolate: bool = True
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    profile: str | None = None
    rerun_failed: bool = False  # with resume: a failed row is not final, its configuration runs again
    processes: int = 1  # worker processes per configuration, in rounds over the sweep, merged into one record

    def settings_for(self, cfg: Config, *, profile: bool = False) -> TelemetrySettings:
        """The telemetry settings of one configuration (traces into the run directory)."""
        return self.telemetry.replace(trace_dir=self.telemetry.trace_dir or str(self.run_dir), profile=profile)


Executor = Callable[[Config, str], Record]


def _default_executor(sweep: Sweep, profile_key: str | None) -> Executor:
    def run(cfg: Config, run_id: str) -> Record:
        settings = sweep.settings_for(cfg, profile=cfg.key == profile_key)
        if sweep.isolate:
            return run_isolated(cfg, run_id=run_id, run_dir=sweep.run_dir, settings=settings,
                                timeout_s=sweep.timeout_s)
        rec = execute(cfg, run_id=run_id, settings=settings)
        if cfg.memory_cap_bytes:
            rec.memory_cap_bytes = None
            rec.notes.append("memory cap not applied: it needs a worker process (the sweep runs in-process)")
        return rec

    return run


def _ensure_file(path: Path) -> None:
    """Create ``path`` durably (the directory entry fsynced too) if it does not exist."""
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


#: Per-process records of a ``--processes`` sweep, appended and fsynced as each process finishes, so a killed sweep
#: resumes without measuring them again; removed when the sweep completes.
PROCESSES_FILE = "processes.jsonl"


def _finished_processes(path: Path) -> dict[str, list[Record]]:
    """The ok per-process records already in ``path``, by configuration key, in order."""
    out: dict[str, list[Record]] = {}
    if not path.is_file():
        return out
    rows, _ = read_records(path)
    for row in rows:
        if row.get("status") == "ok" and row.get("config_key"):
            out.setdefault(str(row["config_key"]), []).append(record_from_dict(row))
    return out


def run_sweep(sweep: Sweep, *, executor: Executor | None = None,
              on_start: Callable[[int, int, Config], None] | None = None,
              on_done: Callable[[int, int, Record], None] | None = None) -> list[Record]:
    """Run every configuration not already finished; each record is appended and fsynced as it completes.

    With ``sweep.processes`` = N > 1 the sweep makes N rounds over the configurations (asv's rounds: a configuration's
    processes are spread over the run, so a slow minute of the machine does not land on all of them); each process's
    record goes to ``processes.jsonl`` as it finishes, and a configuration's merged row is appended once its last
    process is in. A process that does not finish ok ends its configuration with that record (a note says which).
    """
    results = sweep.run_dir / RESULTS_FILE
    side = sweep.run_dir / PROCESSES_FILE
    repair_tail(results)
    _ensure_file(results)
    done = finished_keys(results, rerun_failed=sweep.rerun_failed) if sweep.resume else set()
    todo: list[tuple[Config, str | None]] = [(c, None) for c in sweep.configs] + list(sweep.skipped)
    profile_key = None
    if sweep.profile is not None:
        profile_key = next((c.key for c, why in todo if why is None and c.key not in done
                            and sweep.profile in (PROFILE_FIRST, c.strategy)), None)
    run = executor or _default_executor(sweep, profile_key)
    n = max(1, sweep.processes)
    if n > 1:
        repair_tail(side)
    measured = _finished_processes(side) if n > 1 and sweep.resume else {}
    records: list[Record] = []
    total = len(todo)

    def finish(i: int, rec: Record) -> None:
        append_record(results, rec)
        done.add(rec.config_key)
        records.append(rec)
        if on_done:
            on_done(i, total, rec)

    try:
        for round_ in range(n):
            for i, (cfg, skip_reason) in enumerate(todo, 1):
                if cfg.key in done:
                    continue
                if skip_reason is not None:
                    if on_start:
                        on_start(i, total, cfg)
                    finish(i, cfg.new_record(sweep.run_id, status="skipped", error=skip_reason))
                    continue
                got = measured.setdefault(cfg.key, [])
                if len(got) > round_:
                    continue  # measured before a resume
                if on_start:
                    on_start(i, total, cfg)
                rec = run(cfg, sweep.run_id)
                if n == 1:
                    finish(i, rec)
                    continue
                if rec.status != "ok":
                    rec.processes = n
                    rec.notes.append(f"process {len(got) + 1} of {n} measuring this configuration {rec.status}; "
                                     "the others are not kept")
                    finish(i, rec)
                    continue
                append_record(side, rec)
                got.append(rec)
                if len(got) == n:
                    finish(i, merge_processes(got))
        if n > 1:
            side.unlink(missing_ok=True)
    finally:
        for sub in (WORK_DIR, LOG_DIR):  # drop them when empty
            try:
                (sweep.run_dir / sub).rmdir()
            except OSError:
                pass
    return records


def split_available(names: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Strategies that can run here, and (name, reason) for those that cannot."""
    avail = registry.availability()
    ok, missing = [], []
    for n in names:
        can, reason = avail[n]
        (ok.append(n) if can else missing.append((n, reason)))
    return ok, missing
