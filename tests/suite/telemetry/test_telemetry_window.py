"""Energy windows: short windows are repeated (never 0 J), the idle baseline, and the profiled pass."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.suite.telemetry.ranges import NullRanges
from accessbench.workloads.config import Workload

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class FakeGpuMeter:
    """Energy = power x wall time, with a different power when idle; needs ``min_window_s`` like NVML does."""

    def __init__(self, *, min_window_s: float, busy_w: float = 300.0, idle_w: float = 60.0) -> None:
        self.min_window_s, self.busy_w, self.idle_w = min_window_s, busy_w, idle_w
        self.windows: list[tuple[str, float]] = []
        self._t0 = 0.0
        self._window = ""

    def start(self, window: str = "measure") -> None:
        self._window, self._t0 = window, time.perf_counter()

    def stop(self) -> tuple[dict[str, Any], list[str]]:
        wall = time.perf_counter() - self._t0
        self.windows.append((self._window, wall))
        power = self.idle_w if self._window == "idle" else self.busy_w
        return {"gpu_energy_j": power * wall, "gpu_power_w": power,
                "energy_window_short": wall < self.min_window_s}, []


def config(store: Path, mode: str = "gather", **kw: Any) -> Config:
    base: dict[str, Any] = {"name": "t", "store": str(store), "mode": mode, "steps": 3, "warmup_steps": 1,
                            "gather_ids": 256, "batch_size": 64, "fanouts": (3, 2), "hidden": 16}
    base.update(kw)
    return Config(strategy="cpu-centric", workload=Workload(**base), mode=mode, device="cpu")


def run_with(cfg: Config, meter: FakeGpuMeter, settings: TelemetrySettings) -> Any:
    factory = lambda d: Telemetry(d, meters=[meter], ranges=NullRanges(), settings=settings)
    rec = execute(cfg, run_id="r", telemetry_factory=factory, settings=settings)
    assert rec.status == "ok", rec.error
    return rec


@pytest.mark.parametrize(("mode", "min_window"), [("gather", 0.25), ("sample", 0.25), ("train", 1.0)])
def test_short_window_is_repeated_until_long_enough(tiny_store: Path, mode: str, min_window: float) -> None:
    meter = FakeGpuMeter(min_window_s=min_window)
    rec = run_with(config(tiny_store, mode), meter, TelemetrySettings(min_energy_window_s=min_window))
    if mode == "gather":
        assert rec.energy_repeats > 1  # 3 gathers of 256 rows take well under 0.25 s
    if rec.energy_repeats == 1:  # a loaded machine: the steps alone filled the window
        assert rec.wall_s >= min_window
        return
    assert rec.measured_steps == rec.energy_repeats * 3 and rec.steps == 3
    assert rec.energy_window_s >= min_window and rec.energy_window_short is False
    assert rec.energy_per_step_j == pytest.approx(rec.gpu_energy_j / rec.measured_steps)
    assert any(f"run {rec.energy_repeats} times" in n for n in rec.notes)
    assert [w for w, _ in meter.windows] == ["measure"]  # one window, not several


def test_repeats_are_capped_and_the_window_flagged(tiny_store: Path) -> None:
    meter = FakeGpuMeter(min_window_s=60.0)
    rec = run_with(config(tiny_store), meter, TelemetrySettings(min_energy_window_s=60.0, max_energy_repeats=2))
    assert rec.energy_repeats == 2 and rec.measured_steps == 6
    assert rec.energy_window_short is True
    assert rec.gpu_energy_j > 0


def test_no_repeats_when_no_meter_needs_long_windows(tiny_store: Path) -> None:
    rec = execute(config(tiny_store), run_id="r")
    assert rec.energy_repeats == 1 and rec.measured_steps == 3


def test_idle_baseline_reports_energy_above_idle(tiny_store: Path) -> None:
    meter = FakeGpuMeter(min_window_s=0.1, busy_w=300.0, idle_w=60.0)
    rec = run_with(config(tiny_store), meter, TelemetrySettings(min_energy_window_s=0.1, idle_baseline=True))
    assert [w for w, _ in meter.windows] == ["measure", "idle"]
    assert rec.idle_window_s >= rec.energy_window_s * 0.99
    assert rec.gpu_idle_power_w == pytest.approx(60.0, rel=0.05)
    expected = rec.gpu_energy_j - rec.gpu_idle_power_w * rec.energy_window_s
    assert rec.gpu_energy_above_idle_j == pytest.approx(expected)
    assert rec.gpu_energy_above_idle_j == pytest.approx(240.0 * rec.energy_window_s, rel=0.1)
    assert rec.cpu_idle_power_w is None  # no RAPL meter in this telemetry
    assert any(n.startswith("cpu idle power not measured") for n in rec.notes)


def test_profile_pass_writes_a_chrome_trace_outside_the_measurement(tiny_store: Path, tmp_path: Path) -> None:
    cfg = config(tiny_store, "train")
    settings = TelemetrySettings(profile=True, profile_steps=2, trace_dir=str(tmp_path), nvtx=False)
    rec = execute(cfg, run_id="r", settings=settings)
    assert rec.status == "ok", rec.error
    assert rec.profile_trace == f"trace_{cfg.key}.json"
    trace = json.loads((tmp_path / rec.profile_trace).read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"sample", "gather", "compute"} <= names and "step 3" in names  # phases labelled, steps numbered
    assert rec.measured_steps == 3  # profiled steps are extra, not in the timings


def test_power_trace_name_only_when_a_trace_was_written(tiny_store: Path, tmp_path: Path) -> None:
    rec = execute(config(tiny_store), run_id="r", settings=TelemetrySettings(trace_dir=str(tmp_path)))
    assert rec.power_trace is None  # CPU device: no GPU sampler, no file
    assert not list(tmp_path.glob("power_*.csv"))
