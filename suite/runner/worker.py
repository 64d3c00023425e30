"""One configuration in its own process: ``python -m accessbench.suite.runner.worker JOB.json`` (started by ``accessbench.suite.runner.isolation``).

The job file holds the configuration, the run id, the telemetry settings, the parent's pid, the placement (intra-op
threads and the CPUs to pin to, applied before torch is imported: suite/runner/placement.py) and where to write the
record and the heartbeat. The worker imports the plugins named in ``ACCESSBENCH_PLUGINS``, measures the
configuration, writes the record as JSON (atomically) and exits 0. It dies with its parent (Linux
``PR_SET_PDEATHSIG``), so a sweep killed with SIGKILL leaves no worker running.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        sys.stderr.write("accessbench worker: parent exited before start-up finished\n")
        raise SystemExit(3)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job named on the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m accessbench.suite.runner.worker JOB.json\n")
        return 2
    job = json.loads(Path(args[0]).read_text())
    _die_with_parent(int(job["parent_pid"]))
    faulthandler.enable(all_threads=True)
    from .placement import JOB_KEY, Placement, apply_affinity

    placement = Placement.from_dict(job[JOB_KEY]) if JOB_KEY in job else None
    pin_note = apply_affinity(placement) if placement is not None else None  # before torch starts its threads

    from accessbench.suite.measure.config import config_from_dict
    from accessbench.suite.measure.lifecycle import execute
    from accessbench.suite.telemetry.heartbeat import Heartbeat
    from accessbench.suite.telemetry.settings import TelemetrySettings

    from .plugins import load_plugins

    if placement is not None:
        import torch

        torch.set_num_threads(placement.threads)  # a strategy's own ``threads`` option still wins in prepare()
    heartbeat = Heartbeat(Path(job["heartbeat"]))
    heartbeat.stage("setup")
    load_plugins()
    cfg = config_from_dict(job["config"])
    if cfg.key != job["config_key"]:
        raise RuntimeError(f"configuration key changed in transit: {cfg.key} != {job['config_key']}")
    settings = TelemetrySettings.from_dict(job["settings"])
    record = execute(cfg, run_id=job["run_id"], settings=settings, heartbeat=heartbeat)
    if placement is not None:
        record.notes.append(placement.reason)
    if pin_note:
        record.notes.append(pin_note)
    _write_atomic(Path(job["record"]), record.to_json())
    heartbeat.stage("done")
    heartbeat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
