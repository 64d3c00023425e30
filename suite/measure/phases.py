"""What every mode shares: failures named by phase, warm-up, filling a record's phase, rate and counter fields,
and the optional profiled pass. The modes (``gather``, ``sample``, ``train``) are one module each beside this one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accessbench import schema
from accessbench.kernels.base import AccessStrategy
from accessbench.stats import summarise
from accessbench.suite.telemetry import Telemetry

from .records import PHASE_FIELDS, Record
from .window import StepBody, profile_pass

__all__ = ["ENDLESS", "ROWS_KEY", "PhaseFailure", "capped_samples", "fill_phases", "fill_rates", "fill_stats",
           "in_phase", "profile", "sync_current_stream", "warmup"]

#: Seed batches are drawn from an endless seeded stream, so measured steps can be repeated (energy windows) and
#: pipelining strategies stay in steady state to the last measured step.
ENDLESS = 1 << 62


class PhaseFailure(Exception):
    def __init__(self, phase: str, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.phase, self.exc = phase, exc


def in_phase(phase: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PhaseFailure:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise PhaseFailure(phase, exc) from exc


#: Key under which a step body reports the rows it delivered (not a phase; ignored by the phase statistics).
ROWS_KEY = "_rows"


def sync_current_stream(device: torch.device) -> None:
    """Wait for the work queued on this thread's current stream only (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def capped_samples(values: list[float], cap: int = schema.SAMPLES_CAP) -> list[float]:
    """At most ``cap`` of ``values`` (seconds), evenly strided over the run when there are more; rounded to 1 ns."""
    if len(values) > cap:
        values = [values[(i * len(values)) // cap] for i in range(cap)]
    return [round(v, 9) for v in values]


def fill_phases(rec: Record, per_step: list[dict[str, float]], strategy: AccessStrategy | None) -> None:
    """Each phase's median and p10/p90 over the steps, and its per-step samples (``samples``)."""
    for phase in PHASE_FIELDS:
        values = [s[phase] for s in per_step if phase in s]
        if values and len(values) != len(per_step):
            rec.notes.append(f"phase {phase} ran in {len(values)} of {len(per_step)} steps")
        if values:
            rec.samples[phase] = capped_samples(values)
        med, p10, p90 = summarise(values)
        setattr(rec, f"{phase}_s", med)
        setattr(rec, f"{phase}_s_p10", p10)
        setattr(rec, f"{phase}_s_p90", p90)
    if strategy is not None and rec.mode != "sample" and rec.transfer_s is None and not strategy.has_transfer_phase:
        rec.notes.append("transfer_s null: this strategy has no separate host-to-device phase on this device")


def fill_stats(rec: Record, strategy: AccessStrategy, data_s: float | None) -> None:
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


def fill_rates(rec: Record, per_step: list[dict[str, float]], row_bytes: int) -> None:
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


def warmup(telemetry: Telemetry, mode: str, steps: int, body: StepBody) -> None:
    telemetry.stage("warmup")
    for i in range(steps):
        with telemetry.step(i):
            in_phase(mode, lambda: body(i))


def profile(rec: Record, telemetry: Telemetry, mode: str, body: StepBody, path: Path | None) -> None:
    """The optional profiled pass, after every figure of the record is taken (counters are not read again)."""
    if path is None:
        return
    steps = min(rec.steps or 1, telemetry.settings.profile_steps)
    first = rec.measured_steps or 0
    in_phase(mode, lambda: profile_pass(rec, telemetry, steps, body, path, first_index=first))

