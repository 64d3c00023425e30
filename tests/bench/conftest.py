"""pytest-benchmark sessions: the tiny preset's graph, the compute device, and the GPU in the machine info.

The normal test command runs these once each with benchmarking disabled (``--benchmark-disable`` in addopts);
measure with ``python -m pytest tests/bench --benchmark-enable`` (see docs/REPORTS.md).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from accessbench.kernels.device import cuda_available, resolve_device
from accessbench.kernels.types import GraphData
from accessbench.suite.telemetry.envstamp import driver_version
from accessbench.workloads.config import Workload, load_workload
from accessbench.workloads.graphs import materialise


def gpu_machine_info() -> dict[str, Any]:
    """GPU name(s), driver, CUDA and torch versions; ``gpu`` is None with a note on a CPU-only machine."""
    info: dict[str, Any] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if not cuda_available():
        info.update(gpu=None, gpu_note="torch sees no CUDA device", driver=None, cuda=None)
        return info
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=names[0], gpus=names, gpu_memory_bytes=int(props.total_memory),
                gpu_sm_count=int(props.multi_processor_count), driver=driver_version(), cuda=torch.version.cuda)
    return info


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Add the GPU, its driver and the torch/CUDA versions to every saved benchmark run."""
    machine_info.update(gpu_machine_info())


@pytest.fixture(scope="session")
def tiny_workload() -> Workload:
    """The ``tiny`` preset: 5k nodes, 32-wide fp32 rows."""
    return load_workload("tiny")


@pytest.fixture(scope="session")
def tiny_graph(tiny_workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> GraphData:
    """The tiny preset's graph, generated once per session into the session's temporary cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACCESSBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return materialise(tiny_workload)


@pytest.fixture(scope="session")
def compute_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return resolve_device("auto")
