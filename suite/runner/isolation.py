"""Run one configuration in its own process (``python -m accessbench.suite.runner.worker``), with a timeout.

A crash (segmentation fault, abort), a CUDA error that kills the process, the kernel's out-of-memory killer, a hang
past the timeout or an external kill becomes a ``failed`` record: the exit status or signal, the stage, step and
phase the worker's heartbeat last showed, and the telling line of its output (kept in ``logs/`` in the run
directory). The worker gets a fresh interpreter (never a fork of a process that may hold a CUDA context), its own
process group (killed as a whole), and dies with the parent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from accessbench.suite.measure.config import Config, config_from_dict, config_to_dict, record_from_dict
from accessbench.suite.measure.memcap import ENV as MEMCAP_ENV
from accessbench.suite.measure.memcap import MemoryCap, MemoryCapUnavailable
from accessbench.suite.measure.records import Record
from accessbench.suite.telemetry.heartbeat import HeartbeatState, read_heartbeat
from accessbench.suite.telemetry.settings import TelemetrySettings

from .placement import JOB_KEY as PLACEMENT_KEY
from .placement import plan, sample_busy, usable_cpus
from .plugins import ENV as PLUGINS_ENV
from .plugins import plugin_env

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LOG_DIR",
    "WORK_DIR",
    "config_from_dict",
    "config_to_dict",
    "record_from_dict",
    "run_isolated",
]

DEFAULT_TIMEOUT_S = 3600.0
WORK_DIR = ".work"
LOG_DIR = "logs"
_SIGNAL_HINTS = {
    "SIGSEGV": "segmentation fault",
    "SIGBUS": "bus error: a memory-mapped file shrank, or misaligned access",
    "SIGABRT": "aborted",
    "SIGKILL": "killed: the kernel's out-of-memory killer, or another process",
    "SIGFPE": "arithmetic fault",
    "SIGILL": "illegal instruction",
}


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the worker's process group, then SIGKILL it if it is still there after ``grace_s``.

    Signals go out only while the worker is unreaped (``poll()`` is None), so its pid, which is the group id, cannot
    have been reused by another process.
    """
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 30.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _frame(line: str) -> tuple[str, str] | None:
    """(``file:line in func``, full path) of a faulthandler frame line."""
    m = re.match(r'\s*File "([^"]+)", line (\d+) in (\S+)', line)
    return (f"{Path(m.group(1)).name}:{m.group(2)} in {m.group(3)}", m.group(1)) if m else None


def _is_library(path: str) -> bool:
    return "site-packages" in path or "dist-packages" in path or path.startswith(sys.base_prefix)


def _log_detail(log: str) -> str:
    """The telling line of a worker's output: faulthandler's innermost frame (and the innermost one outside the
    Python install and libraries, when that differs), else the last non-empty line."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    if not lines:
        return ""
    for i, ln in enumerate(lines):
        if ln.startswith("Fatal Python error"):
            frames = []
            for f in lines[i + 1:]:
                if not f.strip().startswith("File "):
                    if frames:
                        break
                    continue
                parsed = _frame(f)
                if parsed:
                    frames.append(parsed)
            if not frames:
                return ln.strip()
            text = f"{ln.strip()} at {frames[0][0]}"
            if _is_library(frames[0][1]):
                own = next((where for where, path in frames if not _is_library(path)), None)
                if own:
                    text += f" (from {own})"
            return text
    return lines[-1].strip()[:400]


def _failed_phase(cfg: Config, hb: HeartbeatState | None) -> str:
    if hb is None:
        return "setup"
    return cfg.mode if hb.stage in ("warmup", "measure", "idle", "profile") else hb.stage


def _failed_record(cfg: Config, run_id: str, *, rc: int | None, timed_out: bool, timeout_s: float | None,
                   hb: HeartbeatState | None, log: str) -> Record:
    rec = cfg.new_record(run_id, status="failed", steps=cfg.workload.steps, warmup_steps=cfg.workload.warmup_steps,
                         worker_exit_code=rc)
    if timed_out:
        why = f"timed out after {timeout_s:g} s and was killed"
        if hb is not None and hb.age_s is not None:
            why += f" (no progress for the last {hb.age_s:.0f} s)"
    elif rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        why = f"worker killed by {name}" + (f" ({_SIGNAL_HINTS[name]})" if name in _SIGNAL_HINTS else "")
    elif rc:
        why = f"worker exited with status {rc}"
    else:
        why = "worker exited without writing its record"
    where = hb.describe() if hb is not None else "start-up"
    detail = "" if timed_out else _log_detail(log)
    rec.failed_phase = _failed_phase(cfg, hb)
    rec.error = f"{why} during {where}" + (f": {detail}" if detail else "")
    return rec


def run_isolated(cfg: Config, *, run_id: str, run_dir: Path, settings: TelemetrySettings | None = None,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S, grace_s: float = 5.0) -> Record:
    """Measure ``cfg`` in a worker process; always returns a record (``failed`` when the worker did not finish)."""
    settings = settings or TelemetrySettings(trace_dir=str(run_dir))
    work = run_dir / WORK_DIR / cfg.key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (run_dir / LOG_DIR).mkdir(exist_ok=True)
    log_path = run_dir / LOG_DIR / f"worker_{cfg.key}.log"
    placement = plan(cfg.workload.cores, usable=usable_cpus(), busy=sample_busy())
    job = {"config": config_to_dict(cfg), "config_key": cfg.key, "run_id": run_id, "settings": settings.to_dict(),
           "record": str(work / "record.json"), "heartbeat": str(work / "heartbeat"), "parent_pid": os.getpid(),
           PLACEMENT_KEY: placement.to_dict()}
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job, default=str))
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    plugins = plugin_env()
    if plugins:
        env[PLUGINS_ENV] = plugins
    timed_out = False
    cap: MemoryCap | None = None
    cap_note = None
    if cfg.memory_cap_bytes:
        try:  # a first bound; the worker tightens it to its own footprint + the cap once prepared
            cap = MemoryCap.create(f"accessbench-{cfg.key}-{os.getpid()}", psutil.virtual_memory().total)
            env[MEMCAP_ENV] = cap.env
        except MemoryCapUnavailable as exc:
            cap_note = f"memory cap of {cfg.memory_cap_bytes} bytes not applied: {exc}"
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "accessbench.suite.runner.worker", str(job_path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            if cap is not None:  # joined from here: a preexec_fn is unsafe in a parent with threads
                try:
                    cap.add(proc.pid)
                except OSError as exc:
                    cap_note = f"memory cap not applied: cannot move the worker into {cap.path}: {exc.strerror}"
                    cap.remove()
                    cap = None
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc, grace_s)
            except BaseException:  # Ctrl-C or the parent being stopped: never leave a worker behind
                _kill_group(proc, 0.0)
                raise
        cap_peak = cap.peak_bytes() if cap else None
    finally:
        if cap is not None:
            cap.remove()
    rc = proc.returncode
    log_text = log_path.read_text(errors="replace")
    record_path = Path(job["record"])
    rec: Record | None = None
    if record_path.is_file():  # written atomically once measuring was over: keep it even if the exit failed
        try:
            rec = record_from_dict(json.loads(record_path.read_text()))
        except (ValueError, TypeError):
            rec = None
        if rec is not None and rc != 0:
            how = "timed out" if timed_out else f"exited with status {rc}"
            rec.notes.append(f"worker {how} after writing its record (while shutting down): {_log_detail(log_text)}")
    if rec is None:
        rec = _failed_record(cfg, run_id, rc=rc, timed_out=timed_out, timeout_s=timeout_s,
                             hb=read_heartbeat(work / "heartbeat"), log=log_text)
    rec.worker_exit_code = rc
    if cap is not None:
        rec.memory_cap_method = cap.method
        rec.notes.append(f"ran in {cap.method} memory cgroup {cap.path.name}; the cgroup's peak: "
                         f"{cap_peak if cap_peak is not None else 'not reported'} bytes")
    elif cap_note:
        rec.memory_cap_bytes = None
        rec.notes.append(cap_note)
    if log_text.strip():
        rec.worker_log = f"{LOG_DIR}/{log_path.name}"
    else:
        log_path.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    return rec
