"""Isolation: a configuration that segfaults, raises or hangs becomes a failed row and the next one still runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.measure.records import RESULTS_FILE, read_records
from accessbench.suite.runner.isolation import (
    _failed_record,
    _log_detail,
    config_from_dict,
    config_to_dict,
    run_isolated,
)
from accessbench.suite.runner.sweep import Sweep, run_sweep
from accessbench.suite.telemetry.heartbeat import Heartbeat, HeartbeatState, read_heartbeat
from accessbench.workloads.config import Workload, load_workload
from tests.suite.runner.faulty_plugin import PLUGIN


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plugin, named to worker processes only (registering it here would leak into other tests)."""
    path = tmp_path / "faulty_plugin.py"
    path.write_text(PLUGIN)
    monkeypatch.setenv("ACCESSBENCH_PLUGINS", str(path))
    return path


def workload(store: Path) -> Workload:
    return Workload(name="t", store=str(store), mode="gather", steps=3, warmup_steps=1, gather_ids=128)


def cfg(store: Path, how: str, after: int = 2, strategy: str = "test-faulty") -> Config:
    options = {"how": how, "after": after} if strategy == "test-faulty" else {}
    return Config(strategy=strategy, workload=workload(store), mode="gather", device="cpu", options=options)


@pytest.mark.slow
def test_crashes_become_failed_rows_and_the_sweep_goes_on(tiny_store: Path, tmp_path: Path, plugin: Path) -> None:
    # gather calls: 1 warm-up, 2 verify, 3 = measured step 0 -> after=2 fails in the measured window
    configs = [cfg(tiny_store, "segfault"), cfg(tiny_store, "raise"), cfg(tiny_store, "hang"),
               cfg(tiny_store, "exit", after=0), cfg(tiny_store, "ok", strategy="cpu-centric")]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sweep = Sweep(configs=configs, run_dir=run_dir, timeout_s=15.0)
    records = run_sweep(sweep)
    rows, bad = read_records(run_dir / RESULTS_FILE)
    assert bad == 0 and [r["config_key"] for r in rows] == [c.key for c in configs]
    seg, err, hang, ex, ok = records

    assert seg.status == "failed" and seg.failed_phase == "gather" and seg.worker_exit_code == -11
    assert seg.error.startswith("worker killed by SIGSEGV (segmentation fault) during measure (measured step 0, "
                                "in phase gather)")
    assert "Fatal Python error: Segmentation fault at __init__.py" in seg.error  # ctypes.string_at ...
    assert "(from faulty_plugin.py:" in seg.error and "in gather)" in seg.error  # ... called from the plugin
    assert seg.worker_log and (run_dir / seg.worker_log).is_file()

    assert err.status == "failed" and err.failed_phase == "gather" and err.worker_exit_code == 0
    assert err.error.startswith("RuntimeError: planted failure")

    assert hang.status == "failed" and hang.failed_phase == "gather"
    assert hang.error.startswith("timed out after 15 s and was killed") and "during measure" in hang.error

    assert ex.status == "failed" and ex.worker_exit_code == 7 and ex.failed_phase == "gather"
    assert ex.error.startswith("worker exited with status 7 during warmup (warm-up step 0, in phase gather)")

    assert ok.status == "ok" and ok.exact is True and ok.worker_exit_code == 0 and ok.steps == 3
    assert not (run_dir / ".work").exists()  # job files are cleaned up


def test_out_of_memory_in_a_worker_is_a_failed_row(tiny_store: Path, tmp_path: Path, plugin: Path) -> None:
    rec = run_isolated(cfg(tiny_store, "oom", after=0), run_id="r", run_dir=tmp_path, timeout_s=120)
    assert rec.status == "failed" and rec.failed_phase == "gather"
    assert rec.error.startswith("CUDA out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")


def test_crash_after_the_record_keeps_the_measurement(tiny_store: Path, tmp_path: Path, plugin: Path) -> None:
    rec = run_isolated(cfg(tiny_store, "crash-at-exit"), run_id="r", run_dir=tmp_path, timeout_s=120)
    assert rec.status == "ok" and rec.worker_exit_code == -11 and rec.step_s is not None
    assert any(n.startswith("worker exited with status -11 after writing its record") for n in rec.notes)


def test_worker_record_matches_in_process_fields(tiny_store: Path, tmp_path: Path) -> None:
    c = cfg(tiny_store, "ok", strategy="cpu-centric")
    rec = run_isolated(c, run_id="abc", run_dir=tmp_path, timeout_s=120)
    assert rec.status == "ok" and rec.run_id == "abc" and rec.config_key == c.key
    assert rec.worker_log is None and not (tmp_path / "logs" / f"worker_{c.key}.log").exists()
    assert rec.energy_repeats == 1 and rec.gpu_energy_j is None
    assert any(n.startswith("gpu energy not measured") for n in rec.notes)


def test_config_round_trip_keeps_the_key(tiny_store: Path) -> None:
    for c in (cfg(tiny_store, "ok", strategy="cpu-centric"),
              Config(strategy="cpu-centric", workload=load_workload("tiny"), mode="train", device="auto",
                     options={"prefetch": 2, "threads": None})):
        again = config_from_dict(json.loads(json.dumps(config_to_dict(c))))
        assert again == c and again.key == c.key


def test_heartbeat_survives_the_writer(tmp_path: Path) -> None:
    hb = Heartbeat(tmp_path / "hb")
    hb.stage("measure")
    hb.step(12)
    hb.phase("transfer")
    hb.close()
    state = read_heartbeat(tmp_path / "hb")
    assert state is not None and (state.stage, state.phase, state.step) == ("measure", "transfer", 12)
    assert state.describe() == "measure (measured step 12, in phase transfer)"
    assert state.age_s is not None and state.age_s < 60
    assert read_heartbeat(tmp_path / "missing") is None


def test_failure_text_for_signals_exits_and_start_up(tiny_store: Path) -> None:
    c = cfg(tiny_store, "ok")
    hb = HeartbeatState(stage="load_graph", phase="", step=None, age_s=1.0)
    rec = _failed_record(c, "r", rc=-9, timed_out=False, timeout_s=None, hb=hb, log="")
    assert rec.failed_phase == "load_graph"
    assert rec.error == "worker killed by SIGKILL (killed: the kernel's out-of-memory killer, or another process) " \
                        "during load_graph"
    log = "Traceback (most recent call last):\n  File \"x.py\", line 1\nPluginError: plugin y failed to import\n"
    rec = _failed_record(c, "r", rc=1, timed_out=False, timeout_s=None, hb=None, log=log)
    assert rec.failed_phase == "setup"
    assert rec.error == "worker exited with status 1 during start-up: PluginError: plugin y failed to import"
    fatal = ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
             '  File "/a/b/kern.py", line 42 in gather\n  File "/a/run.py", line 7 in main\n')
    assert _log_detail(fatal) == "Fatal Python error: Segmentation fault at kern.py:42 in gather"
    import sys

    lib = f"{sys.base_prefix}/lib/python3/ctypes/__init__.py"
    fatal = fatal.replace("/a/b/kern.py", lib)
    assert _log_detail(fatal) == "Fatal Python error: Segmentation fault at __init__.py:42 in gather (from run.py:7 " \
                                 "in main)"
