"""NVTX ranges recorded with a fake backend: one domain, a range per phase and step, none in warm-up, a switch."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from accessbench.suite.measure.lifecycle import Config, execute
from accessbench.suite.telemetry import Telemetry, TelemetrySettings
from accessbench.suite.telemetry.meters import NullMeter
from accessbench.suite.telemetry.ranges import DOMAIN, NullRanges, NvtxRanges, nvtx_ranges
from accessbench.workloads.config import Workload

# torch_geometric (imported by the train-mode model) calls the deprecated torch.jit.script at import time.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class FakeRanges:
    """Records every push and pop with the thread it came from."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None, int | None]] = []
        self._lock = threading.Lock()

    def push(self, name: str, payload: int | None = None) -> None:
        with self._lock:
            self.events.append((threading.current_thread().name, "push", name, payload))

    def pop(self) -> None:
        with self._lock:
            self.events.append((threading.current_thread().name, "pop", None, None))

    def pushes(self, name: str) -> list[int | None]:
        return [p for _, op, n, p in self.events if op == "push" and n == name]


def workload(store: Path, mode: str, **kw: Any) -> Workload:
    base: dict[str, Any] = {"name": "t", "store": str(store), "mode": mode, "steps": 3, "warmup_steps": 2,
                            "gather_ids": 256, "batch_size": 64, "fanouts": (3, 2), "hidden": 16}
    base.update(kw)
    return Workload(**base)


def run(store: Path, mode: str, strategy: str = "cpu-centric", options: dict | None = None,
        **kw: Any) -> tuple[Any, FakeRanges]:
    ranges = FakeRanges()
    cfg = Config(strategy=strategy, workload=workload(store, mode, **kw), mode=mode, device="cpu",
                 options=options or {})
    rec = execute(cfg, run_id="r", telemetry_factory=lambda d: Telemetry(d, meters=[], ranges=ranges))
    assert rec.status == "ok", rec.error
    return rec, ranges


def balanced(events: list[tuple[str, str, str | None, int | None]]) -> bool:
    depth: dict[str, int] = {}
    for thread, op, _, _ in events:
        depth[thread] = depth.get(thread, 0) + (1 if op == "push" else -1)
        if depth[thread] < 0:
            return False
    return all(v == 0 for v in depth.values())


def test_train_ranges_per_step_and_phase_with_step_payload(tiny_store: Path) -> None:
    _, ranges = run(tiny_store, "train")
    assert ranges.pushes("measure") == [None]
    assert ranges.pushes("step") == [0, 1, 2]  # measured steps only, numbered
    for phase in ("sample", "gather", "compute"):
        assert len(ranges.pushes(phase)) == 3, phase
    assert ranges.events[0][2] == "measure"  # nothing before the window: warm-up has no ranges
    assert balanced(ranges.events)
    names = [n for _, op, n, _ in ranges.events if op == "push"]
    first_step = names.index("step")
    assert names[first_step + 1] == "sample"  # phases nest inside their step


def test_gather_and_sample_modes_emit_their_phases(tiny_store: Path) -> None:
    _, ranges = run(tiny_store, "gather")
    assert ranges.pushes("step") == [0, 1, 2] and len(ranges.pushes("gather")) == 3
    assert not ranges.pushes("sample")
    _, ranges = run(tiny_store, "sample")
    assert len(ranges.pushes("sample")) == 3 and balanced(ranges.events)


def test_prefetch_thread_ranges_stay_balanced_per_thread(tiny_store: Path) -> None:
    _, ranges = run(tiny_store, "train", options={"prefetch": 2})
    threads = {t for t, *_ in ranges.events}
    assert any(t.startswith("accessbench-prefetch") for t in threads)
    assert balanced(ranges.events)


def test_ranges_switch_off_and_nvtx_backend_uses_one_domain() -> None:
    off = nvtx_ranges(enabled=False)
    assert isinstance(off, NullRanges) and "--no-nvtx" in off.reason
    assert isinstance(nvtx_ranges(enabled=True), NvtxRanges)  # the nvtx package is installed here

    calls: list[tuple[str, Any]] = []

    class Domain:
        def get_event_attributes(self, **kw: Any) -> dict[str, Any]:
            return kw

        def push_range(self, attrs: dict[str, Any]) -> None:
            calls.append(("push", attrs))

        def pop_range(self) -> None:
            calls.append(("pop", None))

    fake = SimpleNamespace(get_domain=lambda name: calls.append(("domain", name)) or Domain())
    backend = NvtxRanges(fake)
    backend.push("gather")
    backend.pop()
    backend.push("step", 7)
    backend.pop()
    assert calls[0] == ("domain", DOMAIN)
    assert calls[1] == ("push", {"message": "gather", "color": "blue"})
    assert calls[3][1]["message"] == "step" and calls[3][1]["payload"] == 7


def test_telemetry_has_no_ranges_outside_windows_and_in_idle_windows() -> None:
    ranges = FakeRanges()
    tele = Telemetry(torch.device("cpu"), meters=[], ranges=ranges)
    with tele.phase_hook("gather"), tele.step(0):
        pass
    with tele.window("idle", ranges=False), tele.phase_hook("gather"):
        pass
    assert ranges.events == []
    with tele.window("measure"), tele.step(4), tele.phase_hook("transfer"):
        pass
    assert [(op, n, p) for _, op, n, p in ranges.events if op == "push"] == [
        ("push", "measure", None), ("push", "step", 4), ("push", "transfer", None)]


def test_settings_switch_reaches_the_record(tiny_store: Path) -> None:
    cfg = Config(strategy="cpu-centric", workload=workload(tiny_store, "gather"), mode="gather", device="cpu")
    rec = execute(cfg, run_id="r", settings=TelemetrySettings(nvtx=False))
    assert rec.status == "ok"
    assert not any("nvtx" in n for n in rec.notes)  # switched off on purpose: nothing to explain


def test_null_meter_reports_none_and_reason_never_zero(tiny_store: Path) -> None:
    tele = Telemetry(torch.device("cpu"), meters=[NullMeter(("cpu_energy_j",), "cpu energy", "no RAPL here")],
                     ranges=NullRanges())
    with tele.window() as win:
        pass
    assert win["cpu_energy_j"] is None and win["notes"] == ["cpu energy not measured: no RAPL here"]
    cfg = Config(strategy="cpu-centric", workload=workload(tiny_store, "gather"), mode="gather", device="cpu")
    rec = execute(cfg, run_id="r")  # the real meters of this CPU-only machine
    assert rec.status == "ok"
    for field in ("gpu_energy_j", "gpu_power_w", "energy_per_step_j"):
        assert getattr(rec, field) is None
    assert any(n.startswith("gpu energy not measured: device is the CPU") for n in rec.notes)
    if rec.cpu_energy_j is None:
        assert any(n.startswith("cpu energy not measured: ") for n in rec.notes)
    else:
        assert rec.cpu_energy_j > 0
    assert rec.cpu_util_process is not None and rec.energy_repeats == 1


@pytest.mark.parametrize("mode", ["gather", "train"])
def test_heartbeat_follows_stages_steps_and_phases(tiny_store: Path, tmp_path: Path, mode: str) -> None:
    from accessbench.suite.telemetry.heartbeat import Heartbeat, read_heartbeat

    seen: list[str] = []

    class Spy(Heartbeat):
        def stage(self, name: str) -> None:
            seen.append(name)
            super().stage(name)

    hb = Spy(tmp_path / "hb")
    cfg = Config(strategy="cpu-centric", workload=workload(tiny_store, mode), mode=mode, device="cpu")
    rec = execute(cfg, run_id="r", heartbeat=hb)
    assert rec.status == "ok"
    order = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    for expected in ("load_graph", "prepare", "warmup", "measure", "close"):
        assert expected in order
    assert order.index("warmup") < order.index("measure") < order.index("close")
    state = read_heartbeat(tmp_path / "hb")
    assert state is not None and state.stage == "close"
    hb.close()
