"""Run directories: unique default names, one lock per directory, and what a run was (``run.json``) so that
``--resume`` continues the same run and nothing else.

``RunLock`` holds an ``flock`` on ``.lock`` for the whole sweep: a second ``accessbench run`` into the same
directory is refused with who holds it. ``run.json`` records the workload identities, the strategies, the mode and
the device asked for; ``--resume`` refuses a directory whose run.json says something else.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from accessbench.kernels.errors import AccessBenchError

__all__ = ["LOCK_FILE", "RUN_INFO", "RunDirError", "RunLock", "check_run_info", "unique_dir", "write_json",
           "write_run_info"]

LOCK_FILE = ".lock"
RUN_INFO = "run.json"


class RunDirError(AccessBenchError):
    """A run directory that is in use, or that holds another run."""


def unique_dir(base: Path, stem: str) -> Path:
    """A new directory ``base/stem`` (``-2``, ``-3``, ... appended when taken), created atomically."""
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = base / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"no free run directory name for {stem!r} under {base}")


class RunLock:
    """An exclusive lock on a run directory for the duration of a sweep (``with RunLock(dir): ...``)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(f"run directory {self.path.parent} is in use by {holder}; wait for it or use "
                              "another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically and durably (a temporary file, fsynced, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    """Record what this run is (``run.json``)."""
    write_json(run_dir / RUN_INFO, info)


def check_run_info(run_dir: Path, info: dict[str, Any], *, keys: tuple[str, ...] = ("workloads", "mode",
                                                                                    "device")) -> None:
    """For ``--resume``: the directory's run.json must describe the same run (RunDirError saying what differs)."""
    path = run_dir / RUN_INFO
    if not path.exists():
        return  # nothing recorded yet (a run killed before it wrote run.json, or an older one): keys alone decide
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise RunDirError(f"{path} is not valid JSON; it is not a run directory accessbench wrote") from None
    for key in keys:
        if old.get(key) != json.loads(json.dumps(info.get(key), default=str)):
            raise RunDirError(f"--resume: {run_dir} holds another run ({key} was {old.get(key)!r}, now "
                              f"{info.get(key)!r}); use a new --out")
