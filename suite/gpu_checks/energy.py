"""``check --gpu`` section: GPU energy per step and a power trace for each strategy in gather mode (NVML).

Each strategy gathers fresh random ids (100k per step, 512 B rows) through the runner's own ``execute``, so the
figures are measured the same way as in a sweep: the device synchronised at both window edges, measured steps
repeated until the energy window is at least 1 s, an idle baseline of the same length, and a power trace
(``power_<config_key>.csv``) written under ``<out_dir>/energy/``.
"""

from __future__ import annotations

from accessbench.kernels import registry
from accessbench.suite.gpu_checks import CheckRow, GpuCheckContext
from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.measure.records import Record
from accessbench.suite.telemetry.settings import TelemetrySettings
from accessbench.workloads.config import Workload
from accessbench.workloads.generate import GraphSpec

__all__ = ["ORDER", "SECTION", "run"]

SECTION = "Energy and power (NVML)"
ORDER = 80


def _rows(rec: Record, case: str) -> list[CheckRow]:
    if rec.status != "ok":
        return [CheckRow(SECTION, case, rec.strategy, "GPU J/step", None, note=f"{rec.status}: {rec.error}")]
    window = (f"{rec.measured_steps} steps in {rec.energy_window_s:.2f} s ({rec.energy_repeats} passes)"
              if rec.energy_window_s is not None else "")
    why = "; ".join(n for n in rec.notes if "not measured" in n)
    above = (rec.gpu_energy_above_idle_j / rec.measured_steps
             if rec.gpu_energy_above_idle_j is not None and rec.measured_steps else None)
    return [
        CheckRow(SECTION, case, rec.strategy, "GPU J/step", rec.energy_per_step_j,
                 note=f"{window}; trace {rec.power_trace}" if rec.power_trace else (why or window)),
        CheckRow(SECTION, case, rec.strategy, "GPU W", rec.gpu_power_w, reference=rec.gpu_idle_power_w,
                 reference_name="idle", note=f"max {rec.gpu_power_max_w:.0f} W" if rec.gpu_power_max_w else why),
        CheckRow(SECTION, case, rec.strategy, "GPU J/step above idle", above, note=why if above is None else ""),
        CheckRow(SECTION, case, rec.strategy, "CPU J/step (RAPL)", rec.cpu_energy_per_step_j,
                 note="" if rec.cpu_energy_per_step_j is not None
                 else next((n for n in rec.notes if n.startswith("cpu energy")), "")),
        CheckRow(SECTION, case, rec.strategy, "CPU util (cores)", rec.cpu_util_process),
    ]


def run(ctx: GpuCheckContext) -> list[CheckRow]:
    """One gather configuration per available strategy, metered."""
    nodes = 200_000 if ctx.quick else 1_000_000
    wl = Workload(name="energy-check", graph=GraphSpec(num_nodes=nodes, avg_degree=10, feat_dim=128, seed=7),
                  mode="gather", steps=20, warmup_steps=3, gather_ids=100_000)
    out = ctx.out_dir / "energy"
    out.mkdir(parents=True, exist_ok=True)
    settings = TelemetrySettings(trace_dir=str(out), min_energy_window_s=1.0, idle_baseline=True)
    case = f"gather {wl.gather_ids} ids of 512 B rows, {nodes} nodes"
    rows: list[CheckRow] = []
    for name, (ok, reason) in registry.availability().items():
        if not ok:
            rows.append(CheckRow(SECTION, case, name, "GPU J/step", None, note=f"unavailable: {reason}"))
            continue
        cfg = Config(strategy=name, workload=wl, mode="gather", device=str(ctx.device))
        rows.extend(_rows(execute(cfg, run_id="check-energy", settings=settings), case))
    return rows
