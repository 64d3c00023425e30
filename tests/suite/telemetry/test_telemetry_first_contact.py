"""Issue 11 ("GPU first contact"), telemetry side, on the CPU: the heartbeat names the main thread's phase, NVML
energy windows, power limits, the PCIe link and throughput (pynvml mocked with autospec)."""

from __future__ import annotations

import threading
from pathlib import Path

from accessbench.suite.telemetry.heartbeat import Heartbeat, read_heartbeat


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
