"""The probe's contention label and caching rule, the busy warning, and the probe in a child process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import accessbench.suite.probe.busy as busy_mod
import accessbench.suite.probe.ceilings as probe_mod
from accessbench.suite.cli import main
from accessbench.suite.probe.ceilings import PROBE_KEYS, ensure_probe


def _fake(contended: bool, calls: list[bool]):
    def fake(*, quick: bool = False, disk_path: Path | None = None) -> dict[str, Any]:
        calls.append(quick)
        data: dict[str, Any] = {k: {"value": 3.0, "unit": "GB/s", "method": "fake"} for k in PROBE_KEYS}
        data["meta"] = {"schema_version": probe_mod.SCHEMA_VERSION, "quick": quick, "machine": {},
                        "contention": {"others_cores": 1.7 if contended else 0.1, "contended": contended,
                                       "threshold_cores": 0.5}}
        return data
    return fake


def test_contended_probe_is_used_but_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(probe_mod, "run_probe", _fake(True, calls))
    data = ensure_probe(tmp_path / "run", cache=tmp_path / "c", disk_path=tmp_path)
    assert data["meta"]["cached"] is False and "not cached" in data["meta"]["note"]
    assert json.loads((tmp_path / "run" / "probe.json").read_text())["meta"]["contention"]["contended"] is True
    assert not list((tmp_path / "c").glob("probes/*.json"))
    ensure_probe(None, cache=tmp_path / "c", disk_path=tmp_path)
    assert calls == [False, False]  # nothing was cached: measured again
    monkeypatch.setattr(probe_mod, "run_probe", _fake(False, calls))
    assert ensure_probe(None, cache=tmp_path / "c", disk_path=tmp_path)["meta"]["cached"] is True
    assert ensure_probe(None, cache=tmp_path / "c", disk_path=tmp_path)["meta"]["reused"] is True
    assert len(calls) == 3


def test_busy_warning_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(busy_mod, "others_cores", lambda seconds=0.5: 1.25)
    line = busy_mod.busy_warning()
    assert line is not None and "\n" not in line and "1.25 cores" in line
    monkeypatch.setattr(busy_mod, "others_cores", lambda seconds=0.5: 0.1)
    assert busy_mod.busy_warning() is None
    assert busy_mod.others_cores.__module__  # the real sampler exists and returns a number:
    assert busy_mod.CpuWindow().start().others_cores() >= 0.0


def test_run_probes_in_a_child_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11: the parent of the sweep never probes (so never holds a CUDA context); a child does and exits."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("ACCESSBENCH_CACHE", str(cache))
    # a cached probe for this machine, so the child reads it instead of measuring for ten seconds
    monkeypatch.setattr(probe_mod, "run_probe", _fake(False, []))
    ensure_probe(None, disk_path=cache)

    def touched(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the parent process touched CUDA or probed in-process")

    for name in ("init", "_lazy_init", "current_device", "get_device_name", "synchronize", "Event", "set_device",
                 "mem_get_info"):
        monkeypatch.setattr(torch.cuda, name, touched)
    monkeypatch.setattr(probe_mod, "run_probe", touched)
    monkeypatch.setattr(probe_mod, "ensure_probe", touched)
    monkeypatch.setattr(busy_mod, "others_cores", lambda seconds=0.5: 0.0)
    out = tmp_path / "run"
    assert main(["run", "-w", "tiny", "-s", "cpu-centric", "--steps", "2", "--device", "cpu", "--out", str(out),
                 "--no-report"]) == 0
    probe = json.loads((out / "probe.json").read_text())
    assert probe["host_copy_gbps"]["method"] == "fake" and probe["meta"]["reused"] is True
    assert "warning" not in capsys.readouterr().err
