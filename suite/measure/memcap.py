"""A real memory cap for one worker process: a memory cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``).

The page cache a process fills is charged to its cgroup, so a capped worker reading a store through mmap keeps at
most the cap resident, as in Ginex's evaluation (a memory-limited container). ``MemoryCap.create`` makes a child of
this process's own memory cgroup (root can on most Linux machines and containers), the parent moves the worker into
it as soon as it starts (``add``), and ``remove`` deletes it after the worker is gone. Where no cgroup can be made,
``create`` raises ``MemoryCapUnavailable`` with the reason; the caller then emulates the cap (and labels it).

A configuration's ``memory_cap_bytes`` is the memory file pages (the store, the CSR) may hold beyond the worker's
anonymous memory: the parent creates the cgroup with ``limit_bytes`` as a first bound, and the worker, as its
measured window opens (model, optimiser and warm-up buffers allocated), ``tighten``s it to its anonymous memory plus
the cap (``ENV`` tells the worker where its cgroup is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from accessbench.kernels.errors import AccessBenchError

__all__ = ["ENV", "MemoryCap", "MemoryCapUnavailable", "memory_cap_available"]

#: Environment variable naming the worker's cgroup: ``METHOD:PATH``.
ENV = "ACCESSBENCH_MEMCAP"

_MOUNTS = Path("/proc/self/mounts")
_CGROUPS = Path("/proc/self/cgroup")


class MemoryCapUnavailable(AccessBenchError):
    """No memory cgroup can be created here (no controller, not root, read-only cgroupfs)."""


def _mounts() -> list[tuple[str, str, str]]:
    out = []
    for line in _MOUNTS.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], parts[3]))  # mount point, fs type, options
    return out


def _own_path(controller: str | None) -> str:
    """This process's cgroup path for ``controller`` (v1) or the unified hierarchy (None)."""
    for line in _CGROUPS.read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
            return path
    raise MemoryCapUnavailable(f"this process is in no {'unified' if controller is None else controller} cgroup")


def _candidates() -> list[tuple[str, Path, str]]:
    """(method, parent directory, limit file) for each hierarchy with a memory controller, v2 first."""
    out: list[tuple[str, Path, str]] = []
    for mount, fstype, options in _mounts():
        try:
            if fstype == "cgroup2":
                parent = Path(mount) / _own_path(None).lstrip("/")
                controllers = (parent / "cgroup.subtree_control").read_text().split()
                if "memory" in controllers:
                    out.insert(0, ("cgroup-v2", parent, "memory.max"))
            elif fstype == "cgroup" and "memory" in options.split(","):
                out.append(("cgroup-v1", Path(mount) / _own_path("memory").lstrip("/"), "memory.limit_in_bytes"))
        except (OSError, MemoryCapUnavailable):
            continue
    return out


@dataclass
class MemoryCap:
    """A memory cgroup holding at most ``limit_bytes`` (resident memory and page cache of its processes)."""

    path: Path
    method: str
    limit_bytes: int

    @classmethod
    def create(cls, name: str, limit_bytes: int) -> MemoryCap:
        """Make the cgroup ``name`` under this process's own, capped at ``limit_bytes`` (raises if impossible)."""
        if limit_bytes <= 0:
            raise ValueError(f"memory cap must be positive, got {limit_bytes}")
        reasons = []
        for method, parent, limit_file in _candidates():
            path = parent / name
            try:
                path.mkdir(exist_ok=True)
                (path / limit_file).write_text(str(limit_bytes))
                return cls(path, method, limit_bytes)
            except OSError as exc:
                reasons.append(f"{method} at {parent}: {exc.strerror or exc}")
                try:
                    path.rmdir()
                except OSError:
                    pass
        raise MemoryCapUnavailable("no memory cgroup could be made: " + ("; ".join(reasons) or
                                                                        "no cgroup hierarchy with a memory controller"))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (a worker just started) into the cgroup; what it allocates from now on is charged
        here (its few start-up pages stay with the parent's cgroup, which the cap is tightened past anyway)."""
        with open(self.path / "cgroup.procs", "w") as f:
            f.write(str(pid))

    @property
    def env(self) -> str:
        """The ``ENV`` value that lets the worker find this cgroup."""
        return f"{self.method}:{self.path}"

    @classmethod
    def from_env(cls, value: str | None) -> MemoryCap | None:
        """The cgroup ``ENV`` names (None when unset)."""
        if not value or ":" not in value:
            return None
        method, path = value.split(":", 1)
        return cls(Path(path), method, 0)

    @property
    def _limit_file(self) -> str:
        return "memory.max" if self.method == "cgroup-v2" else "memory.limit_in_bytes"

    def usage_bytes(self) -> int:
        """Memory the cgroup's processes use now (anonymous memory and page cache), bytes."""
        name = "memory.current" if self.method == "cgroup-v2" else "memory.usage_in_bytes"
        return int((self.path / name).read_text().split()[0])

    def anon_bytes(self) -> int:
        """Anonymous memory of the cgroup's processes (``memory.stat``: v1 ``rss``, v2 ``anon``), bytes."""
        wanted = "anon" if self.method == "cgroup-v2" else "rss"
        for line in (self.path / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == wanted:
                return int(value)
        raise MemoryCapUnavailable(f"{self.path}/memory.stat has no {wanted!r} line")

    def tighten(self, extra_bytes: int, *, base: int | None = None) -> int:
        """Set the limit to ``base`` (default: the current usage) + ``extra_bytes``; returns the new limit (bytes).

        A limit under the current usage makes the kernel reclaim page cache first (and OOM-kill only when anonymous
        memory alone is over it).
        """
        limit = (self.usage_bytes() if base is None else base) + extra_bytes
        (self.path / self._limit_file).write_text(str(limit))
        self.limit_bytes = limit
        return limit

    def peak_bytes(self) -> int | None:
        """The cgroup's peak memory (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``), if the kernel says."""
        for name in ("memory.max_usage_in_bytes", "memory.peak"):
            try:
                return int((self.path / name).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return None

    def remove(self) -> None:
        """Delete the cgroup (its processes must have exited)."""
        try:
            self.path.rmdir()
        except OSError:
            pass


def memory_cap_available() -> tuple[bool, str]:
    """Whether a memory cgroup can be made here, and how (or why not): a trial cgroup, created and removed."""
    try:
        cap = MemoryCap.create(f"accessbench-probe-{os.getpid()}", 1 << 30)
    except MemoryCapUnavailable as exc:
        return False, str(exc)
    cap.remove()
    return True, cap.method
