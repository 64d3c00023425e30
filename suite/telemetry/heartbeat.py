"""A heartbeat: where a configuration's worker is (stage, strategy phase, step), in a small memory-mapped file.

The worker writes it with plain memory stores (no system call per update, so it can be updated every phase); the
parent reads it after the worker crashed, was killed or timed out, to say where it died. The mapping is shared, so
the page cache keeps the last state even when the worker is killed with SIGKILL.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Heartbeat", "HeartbeatState", "read_heartbeat"]

_NAME = 32
_LAYOUT = struct.Struct(f"<{_NAME}s{_NAME}sqd")  # stage, phase, step (-1: none), unix time of the last update
_STEP = struct.Struct("<qd")  # the step and time at the end of the layout
_SIZE = _LAYOUT.size


@dataclass(frozen=True)
class HeartbeatState:
    """The last state a worker wrote: ``stage`` (setup, load_graph, prepare, warmup, verify, measure, idle,
    profile, close), the strategy ``phase`` last entered, the ``step`` index (None outside step loops) and the
    seconds since the last update."""

    stage: str
    phase: str
    step: int | None
    age_s: float | None

    def describe(self) -> str:
        """``measure (step 3, in phase gather)``-style text."""
        extra = []
        if self.step is not None:
            extra.append(f"{'warm-up' if self.stage == 'warmup' else 'measured'} step {self.step}")
        if self.phase and self.stage in ("warmup", "measure", "profile", "verify"):
            extra.append(f"in phase {self.phase}")
        return self.stage + (f" ({', '.join(extra)})" if extra else "")


class Heartbeat:
    """The writer side (in the worker); cheap enough to call at every phase.

    Only the thread that created it (the worker's main thread) moves the phase: a prefetch thread's phases are
    ignored, so a crash names the phase the main thread was in (e.g. ``compute``), not the loader's ``sample``."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._stage = b""
        self._phase = b""
        self._step = -1
        self._names: dict[str, bytes] = {}
        self._owner = threading.get_ident()
        self._flush()

    def _flush(self) -> None:
        self._map[:_SIZE] = _LAYOUT.pack(self._stage, self._phase, self._step, time.time())

    def stage(self, name: str) -> None:
        """Enter a lifecycle stage (clears the phase and step)."""
        self._stage, self._phase, self._step = name.encode()[:_NAME], b"", -1
        self._flush()

    def phase(self, name: str) -> None:
        """Enter a strategy phase; ignored when called from another thread than the owner's (a prefetch thread)."""
        if threading.get_ident() != self._owner:
            return
        padded = self._names.get(name)
        if padded is None:
            padded = self._names[name] = name.encode()[:_NAME].ljust(_NAME, b"\0")
        self._map[_NAME:2 * _NAME] = padded

    def step(self, index: int) -> None:
        """Begin step ``index`` of the current stage."""
        _STEP.pack_into(self._map, 2 * _NAME, index, time.time())

    def close(self) -> None:
        """Unmap (the file stays for the parent to read)."""
        self._map.close()


def read_heartbeat(path: Path) -> HeartbeatState | None:
    """The last state written to ``path``; None when the worker never wrote one."""
    try:
        data = path.read_bytes()[:_SIZE]
    except OSError:
        return None
    if len(data) < _SIZE:
        return None
    stage, phase, step, t = _LAYOUT.unpack(data)
    stage_s = stage.rstrip(b"\0").decode(errors="replace")
    if not stage_s:
        return None
    return HeartbeatState(stage=stage_s, phase=phase.rstrip(b"\0").decode(errors="replace"),
                          step=step if step >= 0 else None, age_s=max(0.0, time.time() - t) if t else None)
