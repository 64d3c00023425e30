"""Simulate mode: a ``cached`` configuration replayed over a recorded trace, as a record labelled ``simulated``.

The configuration's options are the simulator's (``gpus``, ``cache_fraction``, ``policy``, ``placement``,
``victim_buffer``, ...; see ``suite.sim.simulator.SimConfig``) plus ``trace_steps`` (batches recorded, default
the workload's warm-up + measured steps) and ``hardware`` (a link profile for the projected epoch time). The trace
is recorded once per workload and kept in the run directory (``traces/``), so a grid of simulated rows shares it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from accessbench.kernels.errors import InvalidOptions
from accessbench.kernels.strategies.cached import PolicyConfig
from accessbench.suite.sim.hardware import load_profile
from accessbench.suite.sim.simulator import SimConfig, Trace, as_record_fields, sim_record, simulate
from accessbench.suite.sim.trace import record_trace

from .config import Config
from .records import Record

__all__ = ["run"]

_SIM_FIELDS = {f.name for f in dataclasses.fields(SimConfig)} - {"policy_config"}
_POLICY_FIELDS = {f.name for f in dataclasses.fields(PolicyConfig)}


def _trace(cfg: Config, steps: int, trace_dir: Path | None) -> Trace:
    ident = json.dumps({"workload": cfg.workload.identity(), "steps": steps, "presample": 8}, sort_keys=True,
                       default=str)
    name = hashlib.sha256(ident.encode()).hexdigest()[:16] + ".pt"
    path = (trace_dir / "traces" / name) if trace_dir else None
    if path is not None and path.is_file():
        return Trace.load(path)
    trace = record_trace(cfg.workload, steps=steps, presample_batches=8)
    if path is not None:
        trace.save(path)
    return trace


def run(rec: Record, cfg: Config, trace_dir: Path | None) -> None:
    """Replay ``cfg`` over the workload's trace and fill ``rec`` (hit rate, bytes per link, simulated label)."""
    opts: dict[str, Any] = dict(cfg.options)
    steps = int(opts.pop("trace_steps", cfg.workload.warmup_steps + cfg.workload.steps))
    hardware = opts.pop("hardware", None)
    unknown = set(opts) - _SIM_FIELDS - _POLICY_FIELDS
    if unknown:
        raise InvalidOptions(f"unknown simulate option(s) {sorted(unknown)}; valid: {sorted(_SIM_FIELDS | _POLICY_FIELDS)}")
    policy = PolicyConfig(**{k: v for k, v in opts.items() if k in _POLICY_FIELDS})
    sim_cfg = SimConfig(**{k: v for k, v in opts.items() if k in _SIM_FIELDS}, policy_config=policy)
    trace = _trace(cfg, steps, trace_dir)
    links = load_profile(hardware) if hardware else None
    fields = as_record_fields(sim_record(simulate(trace, sim_cfg), trace, links))
    for key in ("options", "workload", "mode", "device", "ranks", "strategy"):
        fields.pop(key, None)  # the configuration's identity stays as asked
    notes = fields.pop("notes", [])
    for key, value in fields.items():
        setattr(rec, key, value)
    rec.notes.extend(notes)
    rec.steps = trace.header.get("steps")
