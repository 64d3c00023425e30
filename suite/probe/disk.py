"""Filesystem ceilings of a path: 4 KiB random-read IOPS with O_DIRECT at 1, 32 and 128 reads in flight, and
1 MiB sequential read bandwidth.

The probe writes a test file in the directory (dropped afterwards) and reads it with ``O_DIRECT``, so the page cache
is bypassed. It uses ``fio`` (libaio) when installed, which keeps 128 reads in flight from one thread; otherwise
Python threads, one blocking ``preadv`` each (``N`` threads for ``N`` in flight; at 128 the interpreter can limit
the rate, so that figure is a lower bound and its method says so). A memory filesystem (tmpfs, which accepts
``O_DIRECT`` on recent kernels) or one that refuses ``O_DIRECT`` gets null values with the reason.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .memory import missing

__all__ = ["DISK_KEYS", "QUEUE_DEPTHS", "disk_probes", "filesystem_of", "fio_available"]

QUEUE_DEPTHS = (1, 32, 128)
DISK_KEYS = (*(f"disk_iops_qd{q}" for q in QUEUE_DEPTHS), "disk_seq_gbps")
BLOCK = 4096
SEQ_BLOCK = 1 << 20
SEQ_DEPTH = 8
Engine = Literal["auto", "fio", "threads"]


def fio_available() -> bool:
    """True when the ``fio`` binary is on PATH."""
    return shutil.which("fio") is not None


def _write_test_file(directory: Path, nbytes: int) -> Path:
    fd, name = tempfile.mkstemp(prefix=".accessbench-probe-", suffix=".bin", dir=directory)
    rng = np.random.default_rng(0)  # random bytes: no compression or dedup below can shrink the reads
    try:
        with os.fdopen(fd, "wb") as f:
            left = nbytes
            while left:
                chunk = min(left, 8 << 20)
                f.write(rng.bytes(chunk))
                left -= chunk
            f.flush()
            os.fsync(f.fileno())
        with open(name, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _threads_run(path: Path, depth: int, seconds: float, block: int, sequential: bool) -> tuple[int, float]:
    """Reads done by ``depth`` threads in ``seconds``: (reads, elapsed s)."""
    size = path.stat().st_size
    blocks = size // block
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    counts = [0] * depth
    cursor = iter(range(1 << 62))  # shared sequential position (next() on a range iterator is atomic under the GIL)
    start_gate = threading.Barrier(depth + 1)
    stop = threading.Event()
    errors: list[Exception] = []

    def worker(i: int) -> None:
        buf = mmap.mmap(-1, block)  # page-aligned, as O_DIRECT requires
        rnd = random.Random(i)
        try:
            start_gate.wait()
            n = 0
            while not stop.is_set():
                b = next(cursor) % blocks if sequential else rnd.randrange(blocks)
                if os.preadv(fd, [buf], b * block) != block:
                    raise OSError(errno.EIO, f"short read at block {b}")
                n += 1
            counts[i] = n
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            errors.append(exc)
            stop.set()
        finally:
            buf.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(depth)]
    try:
        for t in threads:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def _fio(path: Path, *, rw: str, block: int, depth: int, seconds: float) -> dict[str, Any]:
    # note: fio ignores time_based below one second and reads the file once; callers pass whole seconds
    cmd = ["fio", "--name=accessbench", f"--filename={path}", "--direct=1", f"--rw={rw}", f"--bs={block}",
           f"--iodepth={depth}", "--ioengine=libaio", "--numjobs=1", "--time_based", f"--runtime={seconds}s",
           "--readonly", "--output-format=json", "--invalidate=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise OSError(f"fio failed: {done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout[done.stdout.index("{"):])["jobs"][0]["read"]


def _measure_fio(path: Path, seconds: float, what: dict[str, tuple[str, str]], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    secs = max(1, round(seconds))
    for q in QUEUE_DEPTHS:
        key = f"disk_iops_qd{q}"
        read = _fio(path, rw="randread", block=BLOCK, depth=q, seconds=secs)
        out[key] = {"value": float(read["iops"]), "unit": "IOPS", "engine": "fio",
                    "method": f"fio libaio, {what[key][1]}, {secs} s on a {where}"}
    read = _fio(path, rw="read", block=SEQ_BLOCK, depth=SEQ_DEPTH * 2, seconds=secs)
    out["disk_seq_gbps"] = {"value": float(read["bw_bytes"]) / 1e9, "unit": "GB/s", "engine": "fio",
                            "method": f"fio libaio, 1 MiB O_DIRECT sequential reads, {SEQ_DEPTH * 2} in flight, "
                                      f"{secs} s on a {where}"}
    return out


def _measure_threads(path: Path, seconds: float, what: dict[str, tuple[str, str]], where: str,
                     note: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in QUEUE_DEPTHS:
        key = f"disk_iops_qd{q}"
        reads, elapsed = _threads_run(path, q, seconds, BLOCK, sequential=False)
        bound = " (lower bound: Python threads)" if q > 8 else ""
        out[key] = {"value": reads / elapsed, "unit": "IOPS", "engine": "threads",
                    "method": f"{q} Python threads doing blocking preadv, {what[key][1]}, {seconds:g} s on a "
                              f"{where}{bound}{note}"}
    reads, elapsed = _threads_run(path, SEQ_DEPTH, seconds, SEQ_BLOCK, sequential=True)
    out["disk_seq_gbps"] = {"value": reads * SEQ_BLOCK / elapsed / 1e9, "unit": "GB/s", "engine": "threads",
                            "method": f"1 MiB O_DIRECT reads in file order from {SEQ_DEPTH} Python threads "
                                      f"(wrapping around), {seconds:g} s on a {where}{note}"}
    return out


_MEMORY_FS = ("tmpfs", "ramfs", "devtmpfs", "hugetlbfs")


def filesystem_of(path: Path) -> tuple[str, str]:
    """(filesystem type, source device) of the mount holding ``path``, from /proc/mounts; ("?", "?") if unknown."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "?", "?"
    target = str(Path(path).resolve())
    best = ("", "?", "?")
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, parts[2], parts[0])
    return best[1], best[2]


def _refuses_direct(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return f"the filesystem of {path.parent} refuses O_DIRECT (tmpfs or similar): no device to measure there"
        raise
    try:
        buf = mmap.mmap(-1, BLOCK)
        try:
            os.preadv(fd, [buf], 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return f"the filesystem of {path.parent} accepts O_DIRECT but rejects aligned 4 KiB reads"
            raise
        finally:
            buf.close()
    finally:
        os.close(fd)
    return None


def disk_probes(directory: Path, *, file_bytes: int, seconds: float, engine: Engine = "auto") -> dict[str, Any]:
    """IOPS at each of ``QUEUE_DEPTHS`` and sequential GB/s for the filesystem holding ``directory``.

    ``file_bytes``: size of the test file; ``seconds``: run time of each measurement.
    """
    directory = Path(directory)
    what = {f"disk_iops_qd{q}": ("IOPS", f"4 KiB O_DIRECT random reads, {q} in flight") for q in QUEUE_DEPTHS}
    what["disk_seq_gbps"] = ("GB/s", "1 MiB O_DIRECT reads in file order")
    if not directory.is_dir():
        return {k: missing(u, m, f"{directory} is not a directory") for k, (u, m) in what.items()}
    use_fio = engine == "fio" or (engine == "auto" and fio_available())
    if engine == "fio" and not fio_available():
        raise FileNotFoundError("fio is not installed; use engine='threads'")
    fstype, source = filesystem_of(directory)
    if fstype in _MEMORY_FS:
        reason = f"{directory} is on {fstype} (memory, not a storage device): give a directory on the SSD"
        return {k: missing(u, m, reason) for k, (u, m) in what.items()}
    try:
        path = _write_test_file(directory, file_bytes)
    except OSError as exc:
        return {k: missing(u, m, f"cannot write a test file in {directory}: {exc}") for k, (u, m) in what.items()}
    out: dict[str, Any] = {}
    try:
        refused = _refuses_direct(path)
        if refused:
            return {k: missing(u, m, refused) for k, (u, m) in what.items()}
        where = f"{file_bytes >> 20} MiB test file in {directory} ({fstype} on {source})"
        fio_note = ""
        if use_fio:
            try:
                out.update(_measure_fio(path, seconds, what, where))
            except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                if engine == "fio":
                    raise
                fio_note = f" (fio failed: {str(exc)[:120]})"
        if not out:
            out.update(_measure_threads(path, seconds, what, where, fio_note))
    finally:
        path.unlink(missing_ok=True)
    return out
