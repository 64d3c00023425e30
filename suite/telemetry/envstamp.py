"""The machine and software stamp every record carries: GPU, driver, CUDA, torch, triton, CPU, cores, commit, time."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_model", "driver_version", "environment", "git_commit", "gpu_stamp", "toolchain_stamp"]


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def git_commit() -> str | None:
    """The commit of the accessbench checkout, with ``+dirty`` when it has uncommitted changes; None outside git."""
    root = Path(__file__).resolve().parents[2]  # the checkout (suite/telemetry/ -> root)
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def driver_version() -> str | None:
    """The NVIDIA driver version from NVML; None where NVML or a driver is absent."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - any NVML trouble means "driver unknown", never a failure
        return None
    return version.decode() if isinstance(version, bytes) else str(version)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_stamp(device: torch.device, nvml: Any = None) -> dict[str, Any]:
    """NVML facts about a CUDA ``device``: driver, power limit, clocks, PCIe generation and width.

    Keys: ``driver``, ``driver_cuda`` (``12.4``), ``gpu_power_limit_w`` (enforced), ``gpu_power_limit_default_w``
    (the board's default), ``gpu_sm_clock_mhz``,
    ``gpu_mem_clock_mhz``, ``gpu_sm_clock_max_mhz``, ``gpu_mem_clock_max_mhz``, ``pcie`` (``gen4 x16``),
    ``pcie_gen``, ``pcie_width`` (read now, often at idle, when links downtrain: the energy meter notes the link
    seen during the measured window), ``pcie_gen_max``, ``pcie_width_max``; where NVML is unusable, only ``nvml``
    with the reason.
    """
    from .nvml import NvmlError, device_ids, load_nvml

    try:
        nvml = nvml or load_nvml()
        return nvml.stamp(nvml.handle(device_ids(device)))
    except NvmlError as exc:
        return {"nvml": f"unavailable: {exc}"}


def environment(device: torch.device) -> dict[str, Any]:
    """The stamp for records measured on ``device``."""
    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device_type": device.type,
        "gpu": None,
        "driver": None,
        "cuda": torch.version.cuda,
        "pcie": None,
        "ptxas_cuda": None,  # CUDA of the ptxas triton assembles this device's kernels with
        "driver_cuda": None,  # CUDA the driver supports (it refuses images of a newer one)
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = props.name
        env["gpu_memory_bytes"] = props.total_memory
        env["gpu_sm_count"] = props.multi_processor_count
        env.update(gpu_stamp(device))
        env.update({k: v for k, v in toolchain_stamp(10 * props.major + props.minor).items()
                    if v is not None and env.get(k) is None})
    return env


def toolchain_stamp(arch: int) -> dict[str, str | None]:
    """``ptxas_cuda`` (triton's ptxas for sm_``arch``) and ``driver_cuda`` (``cuDriverGetVersion``), as ``12.4``;
    None where unknown (no triton, no driver)."""
    try:
        from accessbench.kernels.strategies.zero_copy.toolchain import check_toolchain

        return check_toolchain(arch).describe()
    except Exception:  # noqa: BLE001 - the stamp never fails a run
        return {"ptxas_cuda": None, "driver_cuda": None}
