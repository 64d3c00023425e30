"""NVML meters with pynvml mocked by autospec: energy deltas, counter reset, short windows, a missing GPU."""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Callable
from types import SimpleNamespace
from unittest import mock

import pynvml
import pytest
import torch

from accessbench.suite.telemetry import Telemetry, TelemetrySettings, gpu_meter
from accessbench.suite.telemetry import nvml as nvml_module
from accessbench.suite.telemetry.envstamp import gpu_stamp
from accessbench.suite.telemetry.gpu import TRACE_COLUMNS, NvmlEnergyMeter, PowerSampler
from accessbench.suite.telemetry.meters import GPU_FIELDS, NullGpuMeter
from accessbench.suite.telemetry.nvml import DeviceIds, Nvml, NvmlError, NvmlUnavailable, load_nvml, nvml_available
from accessbench.suite.telemetry.ranges import NullRanges


def ticks(*seconds: float) -> Callable[[], float]:
    """A clock that reads ``seconds`` in turn (and fails the test if read more often)."""
    return iter(seconds).__next__


def counter(step_s: float) -> Callable[[], float]:
    """A clock that advances ``step_s`` at every read, starting at 0."""
    return itertools.count(0.0, step_s).__next__


def fake_lib(*, energy_mj: list[int] | None = None) -> mock.NonCallableMagicMock:
    """pynvml autospecced, with plausible readings."""
    lib = mock.create_autospec(pynvml)
    lib.NVMLError = pynvml.NVMLError
    lib.NVML_CLOCK_SM, lib.NVML_CLOCK_MEM = pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_MEM
    lib.NVML_PCIE_UTIL_TX_BYTES, lib.NVML_PCIE_UTIL_RX_BYTES = 0, 1
    if energy_mj is not None:
        lib.nvmlDeviceGetTotalEnergyConsumption.side_effect = energy_mj
    lib.nvmlDeviceGetPowerUsage.return_value = 250_000  # mW
    lib.nvmlDeviceGetUtilizationRates.return_value = SimpleNamespace(gpu=80, memory=40)
    lib.nvmlDeviceGetMemoryInfo.return_value = SimpleNamespace(used=3 << 30, total=80 << 30, free=77 << 30)
    lib.nvmlDeviceGetClockInfo.side_effect = lambda h, kind: 1980 if kind == pynvml.NVML_CLOCK_SM else 2619
    lib.nvmlDeviceGetPcieThroughput.side_effect = lambda h, kind: 12_000_000 if kind == 0 else 24_000_000  # KB/s
    return lib


def not_supported(*_: object) -> None:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_energy_delta_becomes_joules_and_mean_power() -> None:
    lib = fake_lib(energy_mj=[1_000_000, 1_150_000])  # 150 J
    meter = NvmlEnergyMeter(Nvml(lib), "h", min_window_s=0.0, clock=ticks(10.0, 10.5))  # a 0.5 s window
    meter.start()
    fields, notes = meter.stop()
    assert fields["gpu_energy_j"] == pytest.approx(150.0)
    assert fields["gpu_power_w"] == pytest.approx(300.0)
    assert fields["energy_window_short"] is False
    assert not [n for n in notes if "not measured" in n]
    assert lib.nvmlDeviceGetTotalEnergyConsumption.call_count == 2


def test_counter_reset_gives_none_with_reason() -> None:
    meter = NvmlEnergyMeter(Nvml(fake_lib(energy_mj=[9_000_000, 500])), "h", min_window_s=0.0)
    meter.start()
    fields, notes = meter.stop()
    assert fields["gpu_energy_j"] is None and fields["gpu_power_w"] is None
    assert any("went backwards" in n for n in notes)


def test_short_window_is_flagged_and_a_still_counter_is_never_zero() -> None:
    meter = NvmlEnergyMeter(Nvml(fake_lib(energy_mj=[42_000, 42_000])), "h", min_window_s=1.0)
    meter.start()
    fields, notes = meter.stop()
    assert fields["gpu_energy_j"] is None  # never 0 J
    assert fields["energy_window_short"] is True
    assert any("did not advance" in n for n in notes)
    assert any("shorter than 1 s" in n for n in notes)


def test_energy_counter_error_is_mapped_once() -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetTotalEnergyConsumption.side_effect = not_supported
    nvml = Nvml(lib)
    with pytest.raises(NvmlError, match="nvmlDeviceGetTotalEnergyConsumption failed: Not Supported"):
        nvml.energy_mj("h")
    meter = NvmlEnergyMeter(nvml, "h", min_window_s=0.0)
    meter.start()
    fields, notes = meter.stop()
    assert fields["gpu_energy_j"] is None
    assert any("Not Supported" in n for n in notes)


def test_handle_lookup_prefers_uuid_then_pci_and_refuses_a_reordered_index() -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetHandleByUUID.return_value = "by-uuid"
    assert Nvml(lib).handle(DeviceIds(index=0, uuid="abc")) == "by-uuid"
    lib.nvmlDeviceGetHandleByUUID.assert_called_once_with("GPU-abc")
    lib.nvmlDeviceGetHandleByUUID.side_effect = not_supported
    lib.nvmlDeviceGetHandleByPciBusId.return_value = "by-pci"
    assert Nvml(lib).handle(DeviceIds(index=1, uuid="abc", pci_bus_id="00000000:41:00.0")) == "by-pci"
    lib.nvmlDeviceGetHandleByPciBusId.side_effect = not_supported
    with pytest.raises(NvmlError, match="cannot map cuda:1"):
        Nvml(lib).handle(DeviceIds(index=1, uuid="abc", pci_bus_id="x", index_is_nvml=False))
    lib.nvmlDeviceGetHandleByIndex.return_value = "by-index"
    assert Nvml(lib).handle(DeviceIds(index=1, index_is_nvml=True)) == "by-index"


def test_missing_gpu_gives_null_meter_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = gpu_meter(torch.device("cpu"), TelemetrySettings())
    assert isinstance(meter, NullGpuMeter)
    fields, notes = meter.stop()
    assert set(fields) == set(GPU_FIELDS) and all(v is None for v in fields.values())
    assert notes == ["gpu energy not measured: device is the CPU: no GPU to meter"]

    def unavailable() -> Nvml:
        raise NvmlUnavailable("NVML could not start: NVML Shared Library Not Found")

    monkeypatch.setattr("accessbench.suite.telemetry.load_nvml", unavailable)
    meter = gpu_meter(torch.device("cuda", 0), TelemetrySettings())
    assert isinstance(meter, NullGpuMeter) and "Library Not Found" in meter.reason


@pytest.fixture
def fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process's loaded NVML for the test (restored afterwards)."""
    monkeypatch.setattr(nvml_module, "_LOADED", None)


def test_nvml_available_when_the_package_is_missing(fresh_nvml: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # ``import pynvml`` raises ImportError
    assert nvml_available() == (False, "nvidia-ml-py is not installed (pip install nvidia-ml-py)")


def test_nvml_available_when_the_driver_library_is_missing(fresh_nvml: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lib = fake_lib()
    lib.nvmlInit.side_effect = pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setitem(sys.modules, "pynvml", lib)
    assert nvml_available() == (False, "NVML could not start: NVML Shared Library Not Found")
    with pytest.raises(NvmlUnavailable, match="NVML could not start: NVML Shared Library Not Found"):
        load_nvml()
    assert nvml_module._LOADED is None  # a failed start is not remembered as a working NVML


def test_nvml_available_when_nvml_starts_loads_it_once(fresh_nvml: None, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = fake_lib()
    monkeypatch.setitem(sys.modules, "pynvml", lib)
    assert nvml_available() == (True, "available")
    first = load_nvml()
    assert first.lib is lib and load_nvml() is first
    lib.nvmlInit.assert_called_once_with()


def test_real_nvml_here_either_starts_or_says_why() -> None:
    """Whatever this machine has: a working NVML answers a driver version, a missing one a reason in words."""
    ok, reason = nvml_available()
    if ok:
        assert reason == "available"
        assert nvml_module._text(load_nvml().call("nvmlSystemGetDriverVersion"))
    else:
        assert reason.startswith(("NVML could not start: ", "nvidia-ml-py is not installed")), reason
        with pytest.raises(NvmlUnavailable) as info:
            load_nvml()
        assert str(info.value) == reason
        assert not torch.cuda.is_available() or "NVIDIA" not in torch.cuda.get_device_name(0), \
            f"an NVIDIA GPU is visible but NVML did not start: {reason}"


def test_sampler_writes_trace_and_summarises(tmp_path) -> None:
    lib = fake_lib()
    path = tmp_path / "power_k.csv"
    # a long interval: the sampling thread takes its first row and waits; stop() adds the closing row
    sampler = PowerSampler(Nvml(lib), "h", gpu=0, path=path, interval_s=60.0, clock=ticks(7.0, 7.25))
    sampler.start("measure")
    summary, notes = sampler.stop()
    sampler.close()
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(TRACE_COLUMNS)
    assert len(rows) == 2
    assert {r["window"] for r in rows} == {"measure"} and {r["gpu"] for r in rows} == {"0"}
    assert float(rows[0]["power_w"]) == 250.0
    assert [float(r["t_s"]) for r in rows] == [0.0, 0.25]  # seconds since the first row, from the clock
    assert summary["gpu_power_max_w"] == 250.0 and summary["gpu_util_pct"] == 80.0
    assert summary["gpu_mem_used_bytes"] == 3 << 30 and summary["gpu_sm_clock_mhz"] == 1980
    assert summary["pcie_tx_gbps"] == pytest.approx(12.0) and summary["pcie_rx_gbps"] == pytest.approx(24.0)
    assert notes == []


def test_sampler_drops_unsupported_counter_once_and_skips_pcie_at_fast_rates(tmp_path) -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetUtilizationRates.side_effect = not_supported
    sampler = PowerSampler(Nvml(lib), "h", gpu=2, path=None, interval_s=0.01, clock=counter(0.01))
    sampler.start("idle")
    summary, notes = sampler.stop()  # at least two rows: the thread's first and the closing one
    assert lib.nvmlDeviceGetUtilizationRates.call_count == 1
    assert summary["gpu_util_pct"] is None and summary["gpu_power_max_w"] == 250.0
    assert summary["pcie_tx_gbps"] is None and lib.nvmlDeviceGetPcieThroughput.call_count == 0
    assert any("utilization_pct not sampled" in n for n in notes)
    assert any("PCIe throughput not sampled" in n for n in notes)


def test_energy_meter_with_sampler_fills_summary_fields(tmp_path) -> None:
    lib = fake_lib(energy_mj=[0, 3_000])
    sampler = PowerSampler(Nvml(lib), "h", gpu=0, path=tmp_path / "p.csv", interval_s=60.0, clock=counter(0.1))
    meter = NvmlEnergyMeter(Nvml(lib), "h", min_window_s=0.0, sampler=sampler, clock=ticks(1.0, 1.5))
    tele = Telemetry(torch.device("cpu"), meters=[meter], ranges=NullRanges(), clock=ticks(0.0, 0.75))
    with tele.window("measure") as win:
        pass
    tele.close()
    assert win["gpu_energy_j"] == pytest.approx(3.0) and win["gpu_power_w"] == pytest.approx(6.0)  # 3 J in 0.5 s
    assert win["gpu_util_pct"] == 80.0 and win["window_s"] == 0.75
    assert (tmp_path / "p.csv").read_text().startswith("t_s,power_w,gpu")


def test_environment_stamp_from_nvml() -> None:
    lib = fake_lib()
    lib.nvmlDeviceGetHandleByUUID.return_value = "h"
    lib.nvmlSystemGetDriverVersion.return_value = "560.35.03"
    lib.nvmlDeviceGetEnforcedPowerLimit.return_value = 700_000
    lib.nvmlDeviceGetPowerManagementLimit.return_value = 700_000
    lib.nvmlDeviceGetMaxClockInfo.side_effect = lambda h, kind: 1980 if kind == pynvml.NVML_CLOCK_SM else 2619
    lib.nvmlDeviceGetCurrPcieLinkGeneration.return_value = 5
    lib.nvmlDeviceGetCurrPcieLinkWidth.return_value = 16
    lib.nvmlDeviceGetMaxPcieLinkGeneration.side_effect = not_supported
    lib.nvmlDeviceGetMaxPcieLinkWidth.return_value = 16
    nvml = Nvml(lib)
    stamp = nvml.stamp(nvml.handle(DeviceIds(index=0, uuid="u")))
    assert stamp["driver"] == "560.35.03" and stamp["gpu_power_limit_w"] == 700.0
    assert stamp["pcie"] == "gen5 x16" and stamp["pcie_width_max"] == 16
    assert "pcie_gen_max" not in stamp  # not supported: left out, not invented
    assert stamp["gpu_sm_clock_max_mhz"] == 1980 and stamp["gpu_mem_clock_mhz"] == 2619


def test_gpu_stamp_says_why_when_nvml_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> Nvml:
        raise NvmlUnavailable("nvidia-ml-py is not installed")

    monkeypatch.setattr("accessbench.suite.telemetry.nvml.load_nvml", unavailable)
    assert gpu_stamp(torch.device("cuda", 0)) == {"nvml": "unavailable: nvidia-ml-py is not installed"}
