"""NVML energy, the power trace and the GPU environment stamp on a real CUDA device (skipped without one)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import torch

from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.suite.telemetry.gpu import TRACE_COLUMNS
from accessbench.suite.telemetry.ranges import NullRanges
from accessbench.workloads.config import Workload

pytestmark = pytest.mark.gpu


def test_energy_over_a_busy_window_is_positive_and_plausible(tmp_path: Path) -> None:
    device = torch.device("cuda", 0)
    trace = tmp_path / "power.csv"
    tele = Telemetry(device, settings=TelemetrySettings(power_interval_s=0.05), ranges=NullRanges(),
                     trace_path=trace)
    a = torch.randn(4096, 4096, device=device)
    with tele.window("measure") as win:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            a = (a @ a).clamp_(-1, 1)
    tele.close()
    assert win["gpu_energy_j"] is not None and win["gpu_energy_j"] > 0, win["notes"]
    assert 10 < win["gpu_power_w"] < 2000
    assert win["energy_window_short"] is False
    with trace.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(TRACE_COLUMNS) and len(rows) >= 10
    assert all(float(r["power_w"]) > 0 for r in rows)


def test_execute_on_cuda_records_energy_per_step_and_a_power_trace(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=5, warmup_steps=2, gather_ids=4096)
    cfg = Config(strategy="cpu-centric", workload=wl, mode="gather", device="cuda")
    settings = TelemetrySettings(trace_dir=str(tmp_path), min_energy_window_s=0.5, idle_baseline=True)
    rec = execute(cfg, run_id="r", settings=settings)
    assert rec.status == "ok", rec.error
    assert rec.energy_window_s >= 0.5 and rec.energy_repeats >= 1
    assert rec.gpu_energy_j > 0 and rec.energy_per_step_j == pytest.approx(rec.gpu_energy_j / rec.measured_steps)
    assert rec.gpu_idle_power_w is not None and rec.gpu_energy_above_idle_j is not None
    assert rec.power_trace == f"power_{cfg.key}.csv" and (tmp_path / rec.power_trace).stat().st_size > 0
    assert rec.env.get("pcie") and rec.env.get("driver") and rec.env.get("gpu_power_limit_w")


def test_first_contact_nvml_readings_on_the_device(tmp_path: Path) -> None:
    """Issue 11 item 9 on a GPU: the default power limit, the driver's CUDA, the PCIe link under load (not the
    idle, downtrained one), zero-copy-like reads of host memory showing as RX, and the window's segment spread."""
    from accessbench.suite.telemetry.envstamp import environment

    device = torch.device("cuda", 0)
    env = environment(device)
    assert env.get("gpu_power_limit_default_w", 0) >= env.get("gpu_power_limit_w", 0) > 0
    assert env["driver_cuda"] and env["ptxas_cuda"]  # both read (the zero-copy check compares them)
    host = torch.randn(64 << 20, pin_memory=True)  # 256 MiB, copied in repeatedly: traffic into the GPU (RX)
    dev = torch.empty_like(host, device=device)
    tele = Telemetry(device, settings=TelemetrySettings(power_interval_s=0.1), ranges=NullRanges(),
                     trace_path=tmp_path / "power.csv")
    with tele.window("measure") as win:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 6.0:
            dev.copy_(host, non_blocking=True)
            torch.cuda.synchronize(device)
    tele.close()
    assert win["pcie_rx_gbps"] is not None and win["pcie_rx_gbps"] > win["pcie_tx_gbps"]
    assert any(n.startswith("PCIe link during the window: gen") for n in win["notes"])
    assert env.get("pcie_gen_max") is None or any(f"gen{env['pcie_gen_max']}" in n for n in win["notes"])
    assert any("segments of the window" in n for n in win["notes"])
    assert any("is an estimate" in n for n in win["notes"])
