"""Issue 11 ("GPU first contact"), telemetry side, on the CPU: the heartbeat names the main thread's phase, NVML
energy windows, power limits, the PCIe link and throughput (pynvml mocked with autospec)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pynvml
import pytest
import torch

from accessbench.suite.telemetry import TelemetrySettings, envstamp
from accessbench.suite.telemetry.gpu import (
    MIN_ENERGY_WINDOW_S,
    TRACE_COLUMNS,
    NvmlEnergyMeter,
    PowerSampler,
    segment_powers,
    summarise_trace,
)
from accessbench.suite.telemetry.heartbeat import Heartbeat, read_heartbeat
from accessbench.suite.telemetry.meters import GPU_FIELDS
from accessbench.suite.telemetry.nvml import DeviceIds, Nvml
from tests.suite.telemetry.test_telemetry_nvml import fake_lib, ticks


def test_heartbeat_names_the_main_threads_phase_not_the_loaders(tmp_path: Path) -> None:
    hb = Heartbeat(tmp_path / "hb")
    hb.stage("measure")
    hb.step(3)
    hb.phase("compute")
    loader = threading.Thread(target=lambda: hb.phase("sample"))  # a prefetch thread enters its own phase
    loader.start()
    loader.join()
    state = read_heartbeat(tmp_path / "hb")
    assert state is not None and state.phase == "compute" and state.step == 3
    assert state.describe() == "measure (measured step 3, in phase compute)"
    hb.phase("gather")
    assert read_heartbeat(tmp_path / "hb").phase == "gather"
    hb.close()


# ---- NVML (item 9), pynvml mocked with autospec -------------------------------------------------------------------


def test_energy_windows_default_to_five_seconds() -> None:
    assert MIN_ENERGY_WINDOW_S >= 5.0 and TelemetrySettings().min_energy_window_s == MIN_ENERGY_WINDOW_S
    assert NvmlEnergyMeter(Nvml(fake_lib()), "h").min_window_s == MIN_ENERGY_WINDOW_S
    meter = NvmlEnergyMeter(Nvml(fake_lib(energy_mj=[0, 1_000_000])), "h", clock=ticks(0.0, 2.0))
    meter.start()
    fields, notes = meter.stop()
    assert fields["energy_window_short"] is True and fields["gpu_energy_j"] == pytest.approx(1000.0)
    assert any("is an estimate" in n and "SC24" in n for n in notes)
    assert any("shorter than 5 s" in n for n in notes)


def test_segment_powers_and_their_spread() -> None:
    # 10 s at 100 ms: 300 W for the first half, 500 W for the second
    rows = []
    e = 0.0
    for i in range(101):
        t = i * 0.1
        rows.append({"t_s": t, "energy_mj": round(e)})
        e += (300 if t < 5.0 else 500) * 0.1 * 1000
    powers = segment_powers(rows)
    assert len(powers) == 5
    assert powers[0] == pytest.approx(300, rel=0.01) and powers[-1] == pytest.approx(500, rel=0.01)
    assert segment_powers(rows[:15]) == []  # 1.4 s: not two 1-s segments
    assert segment_powers([{"t_s": 0.0, "energy_mj": None}] * 5) == []


def test_meter_reports_the_spread_and_the_link_seen_during_the_window() -> None:
    lib = fake_lib(energy_mj=[0, 4_000_000])  # the meter's own edges: 4 kJ over 10 s
    rows = [{**dict.fromkeys(TRACE_COLUMNS), "t_s": t, "power_w": 400.0, "energy_mj": e, "pcie_gen": g,
             "pcie_width": 16} for t, e, g in [(0.0, 0, 1), (2.5, 1_000_000, 5), (5.0, 2_000_000, 5),
                                                (7.5, 3_000_000, 4), (10.0, 4_000_000, 1)]]
    sampler = mock.create_autospec(PowerSampler, instance=True)
    sampler.rows = rows
    sampler.stop.return_value = (summarise_trace(rows), [])
    meter = NvmlEnergyMeter(Nvml(lib), "h", sampler=sampler, clock=ticks(0.0, 10.0))
    meter.start()
    fields, notes = meter.stop()
    assert fields["gpu_energy_j"] == pytest.approx(4000.0) and fields["energy_window_short"] is False
    assert set(fields) - {"energy_window_short"} == set(GPU_FIELDS)  # the link is a note, not a stray field
    assert any(n.startswith("PCIe link during the window: gen5 x16") for n in notes)
    assert any("over 4 segments" in n and "400.0-400.0 W (spread 0.0%" in n for n in notes)  # readings 2.5 s apart


def test_sampler_reads_the_link_and_energy_only_when_asked() -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetCurrPcieLinkGeneration.return_value = 5
    lib.nvmlDeviceGetCurrPcieLinkWidth.return_value = 16
    lib.nvmlDeviceGetTotalEnergyConsumption.return_value = 123
    row = PowerSampler(Nvml(lib), "h", gpu=0, path=None, interval_s=1.0, clock=ticks(0.0)).sample_once()
    assert (row["pcie_gen"], row["pcie_width"], row["energy_mj"]) == (5, 16, None)
    row = PowerSampler(Nvml(lib), "h", gpu=0, path=None, interval_s=1.0, clock=ticks(0.0), energy=True).sample_once()
    assert row["energy_mj"] == 123


def test_pcie_tx_and_rx_cover_the_same_20_ms() -> None:
    lib = fake_lib()
    spans: dict[int, tuple[float, float]] = {}

    def throughput(handle: object, kind: int) -> int:
        t0 = time.perf_counter()
        time.sleep(0.1)  # NVML blocks 20 ms per read; longer here so the overlap is unmistakable
        spans[kind] = (t0, time.perf_counter())
        return 1_000_000 if kind == 0 else 2_000_000

    lib.nvmlDeviceGetPcieThroughput.side_effect = throughput
    tx, rx = Nvml(lib).pcie_gbps("h")
    assert (tx, rx) == (pytest.approx(1.0), pytest.approx(2.0))
    (a0, a1), (b0, b1) = spans[0], spans[1]
    assert max(a0, b0) < min(a1, b1)  # the two windows overlap
    lib.nvmlDeviceGetPcieThroughput.side_effect = lambda h, kind: (_ for _ in ()).throw(
        pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)) if kind == 0 else 5
    with pytest.raises(Exception, match="nvmlDeviceGetPcieThroughput failed"):
        Nvml(lib).pcie_gbps("h")


def test_stamp_reads_the_default_power_limit_and_the_driver_cuda() -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetHandleByUUID.return_value = "h"
    lib.nvmlSystemGetDriverVersion.return_value = "550.54.15"
    lib.nvmlSystemGetCudaDriverVersion.return_value = 12040
    lib.nvmlDeviceGetEnforcedPowerLimit.return_value = 500_000  # lowered by an admin
    lib.nvmlDeviceGetPowerManagementLimit.return_value = 500_000
    lib.nvmlDeviceGetPowerManagementDefaultLimit.return_value = 700_000
    nvml = Nvml(lib)
    stamp = nvml.stamp(nvml.handle(DeviceIds(index=0, uuid="u")))
    assert stamp["gpu_power_limit_w"] == 500.0 and stamp["gpu_power_limit_default_w"] == 700.0
    assert stamp["driver_cuda"] == "12.4"


def test_environment_stamp_carries_ptxas_and_driver_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    env = envstamp.environment(torch.device("cpu"))
    assert "ptxas_cuda" in env and "driver_cuda" in env  # None on the CPU
    props = SimpleNamespace(name="NVIDIA H100", total_memory=80 << 30, multi_processor_count=132, major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(envstamp, "gpu_stamp", lambda device: {"driver": "550", "driver_cuda": "12.4"})
    seen: list[int] = []

    def toolchain(arch: int) -> dict[str, str | None]:
        seen.append(arch)
        return {"ptxas_cuda": "13.4", "driver_cuda": "12.3"}

    monkeypatch.setattr(envstamp, "toolchain_stamp", toolchain)
    env = envstamp.environment(torch.device("cuda", 0))
    assert seen == [90] and env["ptxas_cuda"] == "13.4" and env["driver_cuda"] == "12.4"  # NVML's kept
