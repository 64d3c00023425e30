"""Durability: a sweep killed with SIGKILL at any point and resumed loses no row and duplicates none."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.measure.records import RESULTS_FILE, Record, append_record, read_records
from accessbench.suite.runner.sweep import Sweep, finished_keys, repair_tail, run_sweep
from accessbench.suite.telemetry.heartbeat import read_heartbeat
from accessbench.workloads.config import Workload
from tests.suite.runner.faulty_plugin import PLUGIN

ROOT = Path(__file__).resolve().parents[3]
WORKLOAD = """
name = "resume"
mode = "gather"
[graph]
num_nodes = 3000
avg_degree = 6
feat_dim = 16
seed = 3
[run]
warmup_steps = 1
steps = 3
[gather]
ids = 500
"""
SWEEP_ARGS = ["-s", "cpu-centric,device-resident", "-o", "cpu-centric:prefetch=0,1,2", "-o", "cpu-centric:threads=1,2",
              "--device", "cpu", "--no-report"]
N_CONFIGS = 7


# ---- repair_tail ----------------------------------------------------------------------------------------------------
def test_repair_tail_cuts_a_torn_line_and_keeps_whole_rows(tmp_path: Path) -> None:
    p = tmp_path / RESULTS_FILE
    assert repair_tail(p) == 0  # missing file
    p.write_bytes(b'{"config_key": "a"}\n{"config_key": "b", "sta')
    assert repair_tail(p) == len(b'{"config_key": "b", "sta')
    assert p.read_bytes() == b'{"config_key": "a"}\n'
    assert repair_tail(p) == 0 and p.read_bytes() == b'{"config_key": "a"}\n'
    p.write_bytes(b'{"config_key": "a"}\n{"config_key": "b"}')  # whole row, only the newline missing
    assert repair_tail(p) == 0
    assert p.read_bytes() == b'{"config_key": "a"}\n{"config_key": "b"}\n'
    p.write_bytes(b'{"config_k')  # a single torn line
    assert repair_tail(p) == 10 and p.read_bytes() == b""
    long_torn = b'{"x": "' + b"y" * 200_000  # longer than the 64 KiB read block
    p.write_bytes(b'{"config_key": "a"}\n' + long_torn)
    assert repair_tail(p) == len(long_torn) and p.read_bytes() == b'{"config_key": "a"}\n'
    p.write_bytes(b'["not", "a", "row"]')
    assert repair_tail(p) == 19


def fake_executor(calls: list[str]):
    def run(cfg: Config, run_id: str) -> Record:
        calls.append(cfg.key)
        return Record(run_id=run_id, config_key=cfg.key, strategy=cfg.strategy, options=dict(cfg.options),
                      workload=cfg.workload.name, mode=cfg.mode, device=cfg.device, status="ok")

    return run


def test_resume_skips_finished_rows_and_redoes_a_torn_one(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=2, warmup_steps=0, gather_ids=64)
    configs = [Config(strategy="cpu-centric", workload=wl, mode="gather", device="cpu", options={"prefetch": p})
               for p in range(4)]
    results = tmp_path / RESULTS_FILE
    for c in configs[:2]:
        append_record(results, Record(config_key=c.key, status="ok"))
    with open(results, "ab") as f:
        f.write(Record(config_key=configs[2].key, status="ok").to_json().encode()[:57])  # killed mid-write
    calls: list[str] = []
    run_sweep(Sweep(configs=configs, run_dir=tmp_path, resume=True), executor=fake_executor(calls))
    assert calls == [configs[2].key, configs[3].key]
    rows, bad = read_records(results)
    assert bad == 0 and sorted(r["config_key"] for r in rows) == sorted(c.key for c in configs)
    calls.clear()
    run_sweep(Sweep(configs=configs, run_dir=tmp_path, resume=True), executor=fake_executor(calls))
    assert calls == []  # everything finished: nothing runs again
    assert finished_keys(results) == {c.key for c in configs}


def test_failed_and_skipped_rows_count_as_finished(tiny_store: Path, tmp_path: Path) -> None:
    wl = Workload(name="t", store=str(tiny_store), mode="gather", steps=2, warmup_steps=0, gather_ids=64)
    a, b, c = (Config(strategy=s, workload=wl, mode="gather", device="cpu")
               for s in ("cpu-centric", "device-resident", "zero-copy"))
    results = tmp_path / RESULTS_FILE
    append_record(results, Record(config_key=a.key, status="failed"))
    calls: list[str] = []
    run_sweep(Sweep(configs=[a, b], run_dir=tmp_path, resume=True, skipped=[(c, "needs CUDA")]),
              executor=fake_executor(calls))
    assert calls == [b.key]
    rows, _ = read_records(results)
    assert [r["status"] for r in rows] == ["failed", "ok", "skipped"]


# ---- SIGKILL at random points ---------------------------------------------------------------------------------------
def cli(out: Path, toml: Path, *extra: str, sweep: list[str] = SWEEP_ARGS) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "accessbench", "run", "-w", str(toml), "--out", str(out),
                             *sweep, *extra], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def rows_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when(proc: subprocess.Popen[bytes], results: Path, rows: int, delay_s: float, *, limit_s: float = 120) -> None:
    """SIGKILL ``proc`` ``delay_s`` after ``results`` holds ``rows`` lines (or when it exits on its own)."""
    deadline = time.monotonic() + limit_s
    while rows_in(results) < rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay_s)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]


def keys(results: Path) -> list[str]:
    rows, bad = read_records(results)
    assert bad == 0
    return [r["config_key"] for r in rows]


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "resume.toml"
    path.write_text(WORKLOAD)
    return path


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_loses_and_duplicates_nothing(tmp_path: Path, toml: Path) -> None:
    full = tmp_path / "full"
    finish(cli(full, toml, "--no-isolate"))
    expected = keys(full / RESULTS_FILE)
    assert len(expected) == N_CONFIGS == len(set(expected))
    rng = random.Random(20240611)
    for trial in range(4):
        out = tmp_path / f"trial{trial}"
        results = out / RESULTS_FILE
        kills = 1 + trial % 2  # some trials are killed again while resuming
        for k in range(kills):
            proc = cli(out, toml, "--no-isolate", *(["--resume"] if k else []))
            kill_when(proc, results, rows=rng.randrange(0, N_CONFIGS), delay_s=rng.uniform(0, 0.05))
        if results.exists() and rng.random() < 0.5:  # and sometimes the kill tears the last line
            with open(results, "ab") as f:
                f.write(b'{"config_key": "torn-by-kill", "status": "o')
        finish(cli(out, toml, "--no-isolate", "--resume"))
        got = keys(results)
        assert len(got) == len(set(got)), f"trial {trial}: duplicated rows"
        assert set(got) == set(expected), f"trial {trial}: rows lost or foreign"
        assert results.read_bytes().endswith(b"\n")


@pytest.mark.slow
def test_killing_an_isolated_sweep_kills_its_worker_and_resume_completes(tmp_path: Path, toml: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "faulty_plugin.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("ACCESSBENCH_PLUGINS", str(plugin))  # for the CLI processes only
    out = tmp_path / "iso"
    small = ["-s", "test-faulty,device-resident", "-o", "test-faulty:how=hang-if-env", "--device", "cpu",
             "--no-report"]
    monkeypatch.setenv("FAULTY_HANG", "1")  # the first run's worker hangs in its first gather
    proc = cli(out, toml, sweep=small)

    def workers() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if "accessbench.suite.runner.worker" in cmd and any(str(out) in c for c in cmd):
                found.append(p)
        return found

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
            (s := read_heartbeat(hb)) is not None and s.stage == "warmup" for hb in out.glob(".work/*/heartbeat")):
        time.sleep(0.05)
    assert workers(), "no worker reached its (hanging) warm-up"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = workers()
    for p in orphans:  # never leave a hanging worker behind, even when the check fails
        p.kill()
    assert not orphans, "a worker outlived its killed parent"
    assert not (out / RESULTS_FILE).exists() or rows_in(out / RESULTS_FILE) == 0

    monkeypatch.delenv("FAULTY_HANG")
    finish(cli(out, toml, "--resume", sweep=small))
    got = keys(out / RESULTS_FILE)
    assert len(got) == 2 == len(set(got))
    rows, _ = read_records(out / RESULTS_FILE)
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert rows[0]["strategy"] == "test-faulty" and rows[0]["worker_exit_code"] == 0


@pytest.mark.slow
def test_ctrl_c_stops_the_worker_and_keeps_finished_rows(tmp_path: Path, toml: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "faulty_plugin.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv("ACCESSBENCH_PLUGINS", str(plugin))
    monkeypatch.setenv("FAULTY_HANG", "1")
    out = tmp_path / "int"
    proc = cli(out, toml, sweep=["-s", "device-resident,test-faulty", "-o", "test-faulty:how=hang-if-env",
                                 "--device", "cpu", "--no-report"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (rows_in(out / RESULTS_FILE) == 1 and any(
            (s := read_heartbeat(hb)) is not None and s.stage == "warmup" for hb in out.glob(".work/*/heartbeat"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; results measured so far are kept" in err.decode()
    rows, bad = read_records(out / RESULTS_FILE)
    assert bad == 0 and [r["strategy"] for r in rows] == ["device-resident"]  # the finished one is kept
    leftover = [p for p in psutil.process_iter(["cmdline"]) if "accessbench.suite.runner.worker" in (p.info["cmdline"] or [])
                and any(str(out) in c for c in p.info["cmdline"])]
    for p in leftover:
        p.kill()
    assert not leftover
