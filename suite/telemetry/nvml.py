"""NVML (nvidia-ml-py) behind one wrapper: imported lazily, and every NVML error mapped once into ``NvmlError``.

``load_nvml()`` returns an ``Nvml`` (or raises ``NvmlUnavailable`` saying why: package missing, driver library
missing, no GPU). Tests build ``Nvml(lib=create_autospec(pynvml))`` directly; nothing here touches the real
library unless ``load_nvml`` is called.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import torch

from accessbench.kernels.errors import AccessBenchError

__all__ = ["DeviceIds", "Nvml", "NvmlError", "NvmlUnavailable", "device_ids", "load_nvml", "nvml_available"]


class NvmlError(AccessBenchError):
    """An NVML call failed; the message names the call and NVML's reason."""


class NvmlUnavailable(NvmlError):
    """NVML cannot be used here (nvidia-ml-py, the driver's libnvidia-ml or a GPU is missing)."""


def _real_error_type() -> type[BaseException]:
    try:
        import pynvml
    except ImportError:  # pragma: no cover - nvidia-ml-py is a test dependency
        return OSError
    return pynvml.NVMLError


class Nvml:
    """Thin, typed access to the NVML calls the suite uses; NVML's exceptions become ``NvmlError`` here only."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        err = getattr(lib, "NVMLError", None)
        self._error: type[BaseException] = (
            err if isinstance(err, type) and issubclass(err, BaseException) else _real_error_type()
        )

    def call(self, fn: str, *args: Any) -> Any:
        """``lib.<fn>(*args)``, with an NVML failure raised as ``NvmlError`` naming ``fn``."""
        try:
            return getattr(self.lib, fn)(*args)
        except self._error as exc:
            raise NvmlError(f"NVML {fn} failed: {exc}") from None

    # ---- devices ------------------------------------------------------------------------------------------------
    def handle(self, ids: DeviceIds) -> Any:
        """The NVML handle of a CUDA device: by UUID, else PCI bus id, else index (only when the order is known)."""
        if ids.uuid:
            uuid = ids.uuid if ids.uuid.startswith(("GPU-", "MIG-")) else f"GPU-{ids.uuid}"
            try:
                return self.call("nvmlDeviceGetHandleByUUID", uuid)
            except NvmlError:
                pass
        if ids.pci_bus_id:
            try:
                return self.call("nvmlDeviceGetHandleByPciBusId", ids.pci_bus_id)
            except NvmlError:
                pass
        if ids.index_is_nvml:
            return self.call("nvmlDeviceGetHandleByIndex", ids.index)
        raise NvmlError(f"cannot map cuda:{ids.index} to an NVML device (no UUID or PCI id matched, and "
                        "CUDA_VISIBLE_DEVICES reorders devices)")

    # ---- counters -----------------------------------------------------------------------------------------------
    def energy_mj(self, handle: Any) -> int:
        """Total energy since the driver loaded, in millijoules (Volta and newer)."""
        return int(self.call("nvmlDeviceGetTotalEnergyConsumption", handle))

    def power_w(self, handle: Any) -> float:
        """Board power draw in watts (NVML averages it over up to ~1 s on recent GPUs)."""
        return float(self.call("nvmlDeviceGetPowerUsage", handle)) / 1000.0

    def utilization_pct(self, handle: Any) -> tuple[float, float]:
        """(GPU busy %, memory-controller busy %) over NVML's last sample period."""
        u = self.call("nvmlDeviceGetUtilizationRates", handle)
        return float(u.gpu), float(u.memory)

    def memory_used_bytes(self, handle: Any) -> int:
        """Device memory in use, in bytes (all processes)."""
        return int(self.call("nvmlDeviceGetMemoryInfo", handle).used)

    def clocks_mhz(self, handle: Any) -> tuple[float, float]:
        """Current (SM clock, memory clock) in MHz."""
        return (float(self.call("nvmlDeviceGetClockInfo", handle, self.lib.NVML_CLOCK_SM)),
                float(self.call("nvmlDeviceGetClockInfo", handle, self.lib.NVML_CLOCK_MEM)))

    def pcie_gbps(self, handle: Any) -> tuple[float, float]:
        """PCIe (tx, rx) throughput in GB/s over NVML's 20 ms sample, as seen by the GPU (zero-copy reads of host
        memory arrive as RX). Each NVML call blocks for its own 20 ms, so TX is read in a helper thread while this
        one reads RX: both cover the same 20 ms, not two successive ones."""
        out: dict[str, Any] = {}

        def read_tx() -> None:
            try:
                out["tx"] = self.call("nvmlDeviceGetPcieThroughput", handle, self.lib.NVML_PCIE_UTIL_TX_BYTES)
            except NvmlError as exc:
                out["error"] = exc

        helper = threading.Thread(target=read_tx, name="accessbench-pcie-tx", daemon=True)
        helper.start()
        try:
            rx = float(self.call("nvmlDeviceGetPcieThroughput", handle, self.lib.NVML_PCIE_UTIL_RX_BYTES))
        finally:
            helper.join()
        if "error" in out:
            raise out["error"]
        return float(out["tx"]) * 1e3 / 1e9, rx * 1e3 / 1e9  # NVML reports KB/s

    def pcie_link(self, handle: Any) -> tuple[int, int]:
        """The PCIe link's current (generation, width). Links downtrain at idle: read it while the GPU works."""
        return (int(self.call("nvmlDeviceGetCurrPcieLinkGeneration", handle)),
                int(self.call("nvmlDeviceGetCurrPcieLinkWidth", handle)))

    def stamp(self, handle: Any) -> dict[str, Any]:
        """Static facts for the environment stamp; each one that NVML cannot give is left out."""
        out: dict[str, Any] = {}
        probes: dict[str, tuple[str, tuple[Any, ...], Any]] = {
            "driver": ("nvmlSystemGetDriverVersion", (), _text),
            "driver_cuda": ("nvmlSystemGetCudaDriverVersion", (), _cuda_version_text),
            "gpu_power_limit_w": ("nvmlDeviceGetEnforcedPowerLimit", (handle,), lambda v: v / 1000.0),
            # the board's default limit: nvmlDeviceGetPowerManagementLimit is the current one, possibly lowered
            "gpu_power_limit_default_w": ("nvmlDeviceGetPowerManagementDefaultLimit", (handle,),
                                          lambda v: v / 1000.0),
            "gpu_sm_clock_max_mhz": ("nvmlDeviceGetMaxClockInfo", (handle, self.lib.NVML_CLOCK_SM), int),
            "gpu_mem_clock_max_mhz": ("nvmlDeviceGetMaxClockInfo", (handle, self.lib.NVML_CLOCK_MEM), int),
            "gpu_sm_clock_mhz": ("nvmlDeviceGetClockInfo", (handle, self.lib.NVML_CLOCK_SM), int),
            "gpu_mem_clock_mhz": ("nvmlDeviceGetClockInfo", (handle, self.lib.NVML_CLOCK_MEM), int),
            "pcie_gen": ("nvmlDeviceGetCurrPcieLinkGeneration", (handle,), int),
            "pcie_width": ("nvmlDeviceGetCurrPcieLinkWidth", (handle,), int),
            "pcie_gen_max": ("nvmlDeviceGetMaxPcieLinkGeneration", (handle,), int),
            "pcie_width_max": ("nvmlDeviceGetMaxPcieLinkWidth", (handle,), int),
        }
        for key, (fn, args, conv) in probes.items():
            try:
                out[key] = conv(self.call(fn, *args))
            except (NvmlError, TypeError, ValueError):
                continue
        if "pcie_gen" in out and "pcie_width" in out:
            out["pcie"] = f"gen{out['pcie_gen']} x{out['pcie_width']}"
        return out


def _cuda_version_text(value: Any) -> str:
    """NVML's and cuDriverGetVersion's encoding: 12040 -> ``12.4``."""
    v = int(value)
    if v <= 0:
        raise ValueError(f"no CUDA version ({v})")
    return f"{v // 1000}.{v % 1000 // 10}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class DeviceIds:
    """What identifies a CUDA device to NVML: its UUID, PCI bus id, and torch index."""

    index: int
    uuid: str | None = None
    pci_bus_id: str | None = None
    index_is_nvml: bool = False  # True when torch's index is NVML's (no CUDA_VISIBLE_DEVICES reordering)


def device_ids(device: torch.device) -> DeviceIds:
    """Identify ``device`` (a CUDA device) for NVML from torch's device properties."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    pci = None
    if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        pci = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
    return DeviceIds(index=index, uuid=str(uuid) if uuid is not None else None, pci_bus_id=pci,
                     index_is_nvml="CUDA_VISIBLE_DEVICES" not in os.environ)


_LOCK = threading.Lock()
_LOADED: Nvml | None = None


def load_nvml() -> Nvml:
    """NVML, initialised once per process; raises ``NvmlUnavailable`` with the reason where it cannot start."""
    global _LOADED
    with _LOCK:
        if _LOADED is not None:
            return _LOADED
        try:
            import pynvml
        except ImportError:
            raise NvmlUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from None
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML could not start: {exc}") from None
        _LOADED = Nvml(pynvml)
        return _LOADED


def nvml_available() -> tuple[bool, str]:
    """Whether NVML can be used here, and why not."""
    try:
        load_nvml()
    except NvmlUnavailable as exc:
        return False, str(exc)
    return True, "available"
