"""``accessbench run`` under torchrun: every rank measures each configuration in lockstep; rank 0 writes one record.

Rank 0 drives ``accessbench.suite.runner.sweep.run_sweep`` (resume, skipped rows, durable appends, progress) with a ``RankLeader`` as
its executor: for each configuration it tells the other ranks which one is next (a broadcast over the session's
control group), measures its own share in this process, collects every rank's record and merges them
(``accessbench.suite.measure.rank_merge``). The other ranks ``follow``: receive a configuration, measure it, send their record, until
rank 0 says the sweep is over. Configurations run in-process (no worker isolation: the process group lives in this
process), only for strategies whose ``supports_ranks`` is true; the others get a ``skipped`` row.

A configuration that ends in different states on different ranks (one rank failed, another did not) may have left a
peer inside a collective it never finished, so the process group can no longer be trusted: its record is written
(``failed``, naming the rank) and the sweep stops before the next configuration (``--resume`` continues it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.errors import AccessBenchError
from accessbench.suite.measure.distributed import RankSession
from accessbench.suite.measure.lifecycle import Config, execute, workload_options
from accessbench.suite.measure.rank_merge import lockstep_intact, merge_records
from accessbench.suite.measure.records import Record
from accessbench.suite.telemetry.settings import TelemetrySettings

from .sweep import RunError, Sweep

__all__ = ["NOT_SUPPORTED", "RANKS_DIR", "RankLeader", "follow", "for_ranks", "shared_run_dir", "supports_ranks"]

#: The reason in the ``skipped`` row of a strategy that cannot run on several ranks.
NOT_SUPPORTED = "does not support several ranks (its supports_ranks is false): run it without torchrun"
#: Ranks other than 0 write their files (power traces) under ``<run dir>/ranks/rank<r>/``.
RANKS_DIR = "ranks"


def supports_ranks(cfg: Config) -> bool:
    """Whether ``cfg``'s strategy can share its placement across ranks (asked of the class: nothing is built)."""
    options = workload_options(cfg.strategy, cfg.workload)
    options.update(cfg.options)
    cls = registry.get(cfg.strategy)
    try:
        if cls.supports_ranks is not AccessStrategy.supports_ranks:  # a plugin that overrides the property itself
            with registry.create(cfg.strategy, **options) as strategy:
                return bool(strategy.supports_ranks)
        return registry.capabilities(cfg.strategy, **options)["supports_ranks"]
    except (AccessBenchError, ValueError, TypeError):
        # invalid options fail at setup on every rank alike (the row says why) if the class claims several ranks
        return bool(cls.SUPPORTS_RANKS) or cls.supports_ranks is not AccessStrategy.supports_ranks


def for_ranks(configs: Sequence[Config], skipped: Sequence[tuple[Config, str]],
              world: int) -> tuple[list[Config], list[tuple[Config, str]]]:
    """Every configuration with ``ranks = world``; those whose strategy does not support several ranks are skipped."""
    run: list[Config] = []
    skip = [(dataclasses.replace(c, ranks=world), why) for c, why in skipped]
    for cfg in configs:
        cfg = dataclasses.replace(cfg, ranks=world)
        if supports_ranks(cfg):
            run.append(cfg)
        else:
            skip.append((cfg, NOT_SUPPORTED))
    return run, skip


def shared_run_dir(session: RankSession, make: Callable[[], Path]) -> Path:
    """Rank 0 makes the run directory (``make``) and every rank gets its path; a failure is raised on every rank."""
    if session.leader:
        try:
            path = make()
        except Exception as exc:
            session.broadcast(("error", str(exc)))
            raise
        session.broadcast(("ok", str(path)))
        return path
    status, value = session.broadcast()
    if status != "ok":
        raise RunError(f"rank 0 could not prepare the run directory: {value}")
    return Path(value)


def _settings(sweep: Sweep, cfg: Config, rank: int) -> TelemetrySettings:
    """Rank 0 writes traces into the run directory, rank r > 0 into ``ranks/rank<r>/`` (no profiling: refused)."""
    settings = sweep.settings_for(cfg)
    if rank == 0:
        return settings
    rank_dir = Path(settings.trace_dir or sweep.run_dir) / RANKS_DIR / f"rank{rank}"
    rank_dir.mkdir(parents=True, exist_ok=True)
    return settings.replace(trace_dir=str(rank_dir))


def _measure(session: RankSession, sweep: Sweep, cfg: Config, run_id: str) -> Record:
    rec = execute(cfg, run_id=run_id, settings=_settings(sweep, cfg, session.rank))
    if rec.power_trace and session.rank:
        rec.power_trace = f"{RANKS_DIR}/rank{session.rank}/{rec.power_trace}"
    return rec


def _divergence(records: Sequence[Record]) -> str:
    states = "; ".join(f"rank {i}: {r.status}" + (f" in {r.failed_phase} ({r.error})" if r.status != "ok" else "")
                       for i, r in enumerate(records))
    return states


class RankLeader:
    """Rank 0's executor for ``run_sweep``: one configuration on every rank, one merged record back."""

    def __init__(self, session: RankSession, sweep: Sweep) -> None:
        if not session.leader:
            raise RuntimeError("RankLeader runs on rank 0 only")
        self.session, self.sweep = session, sweep
        self.broken: str | None = None

    def __call__(self, cfg: Config, run_id: str) -> Record:
        if self.broken is not None:
            raise RunError(self.broken)
        self.session.broadcast({"config": cfg, "run_id": run_id})
        own = _measure(self.session, self.sweep, cfg, run_id)
        records: list[Record] = self.session.gather(own)
        merged = merge_records(records)
        if not lockstep_intact(records):
            merged.notes.append("the ranks ended this configuration in different states, so their collectives may "
                                "no longer be paired: the sweep stopped after it")
            self.broken = (f"ranks diverged in configuration {cfg.key} ({cfg.strategy}): {_divergence(records)}; "
                           f"the remaining configurations were not run (continue with --resume --out "
                           f"{self.sweep.run_dir})")
        return merged

    def finish(self) -> None:
        """Tell the other ranks the sweep is over (call once, also after an error)."""
        self.session.broadcast(None)
        _drop_empty_rank_dirs(self.sweep.run_dir, self.session.world)


def follow(session: RankSession, sweep: Sweep) -> int:
    """A rank other than 0: measure each configuration rank 0 names, send the record back, until it says stop."""
    while True:
        job: dict[str, Any] | None = session.broadcast()
        if job is None:
            break
        rec = _measure(session, sweep, job["config"], job["run_id"])
        session.gather(rec)
    return 0


def _drop_empty_rank_dirs(run_dir: Path, world: int) -> None:
    for r in range(1, world):
        try:
            (run_dir / RANKS_DIR / f"rank{r}").rmdir()
        except OSError:
            pass
    try:
        (run_dir / RANKS_DIR).rmdir()
    except OSError:
        pass
