"""The machine's ceilings (``probe.json``): what the hardware allows, each figure with the method that measured it.

``run_probe`` measures; ``ensure_probe`` measures once per machine and reuses the result: it is cached in
``$ACCESSBENCH_CACHE/probes/`` (else ``~/.cache/accessbench/probes/``) under a key made of the hostname, the GPUs,
the torch version and the filesystem probed, and copied into each run directory as ``probe.json``.

Keys (each ``{value, unit, method}``; ``value`` null with a ``reason`` where it cannot be measured here):
``host_copy_gbps``, ``host_gather_gbps``, ``h2d_pinned_gbps``, ``h2d_pageable_gbps``, ``d2h_pinned_gbps``,
``d2h_pageable_gbps``, ``d2d_gbps``, ``device_gather_gbps``, ``p2p_gbps``, ``disk_iops_qd1``, ``disk_iops_qd32``,
``disk_iops_qd128``, ``disk_seq_gbps``; plus ``meta`` (machine stamp, time, sizes, where the disk was probed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels.device import cuda_available
from accessbench.schema import CONTENDED_CORES
from accessbench.suite.telemetry.envstamp import cpu_model, driver_version

from .busy import CpuWindow
from .disk import DISK_KEYS, disk_probes
from .memory import Sizes, gpu_probes, host_probes

__all__ = [
    "PROBE_FILE",
    "PROBE_KEYS",
    "SCHEMA_VERSION",
    "ensure_probe",
    "ensure_probe_isolated",
    "machine_identity",
    "probe_cache_dir",
    "run_probe",
]

PROBE_FILE = "probe.json"
SCHEMA_VERSION = 1
PROBE_KEYS: tuple[str, ...] = (
    "host_copy_gbps", "host_gather_gbps", "h2d_pinned_gbps", "h2d_pageable_gbps", "d2h_pinned_gbps",
    "d2h_pageable_gbps", "d2d_gbps", "device_gather_gbps", "p2p_gbps", *DISK_KEYS,
)


def probe_cache_dir(cache: Path | None = None) -> Path:
    """Where cached probes live: ``cache`` if given, else ``$ACCESSBENCH_CACHE`` or ``~/.cache/accessbench``."""
    base = cache if cache is not None else Path(os.environ.get("ACCESSBENCH_CACHE",
                                                               Path.home() / ".cache" / "accessbench"))
    return Path(base) / "probes"


def machine_identity() -> dict[str, Any]:
    """Hostname, CPU, cores, torch/CUDA versions and GPU names: the machine a probe belongs to."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda_available() else []
    return {
        "hostname": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "torch": torch.__version__, "cuda": torch.version.cuda if cuda_available() else None,
        "gpus": gpus, "gpu": gpus[0] if gpus else None, "driver": driver_version() if gpus else None,
    }


def _default_disk_path() -> Path:
    from accessbench.workloads.config import cache_dir

    path = cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_key(identity: dict[str, Any], disk_path: Path) -> str:
    try:
        disk = f"dev{os.stat(disk_path).st_dev}"
    except OSError:
        disk = str(disk_path)
    blob = json.dumps([identity["hostname"], identity["gpus"], identity["torch"], disk], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_probe(*, quick: bool = False, disk_path: Path | None = None) -> dict[str, Any]:
    """Measure every ceiling now (about 10-20 s on a CPU-only machine; ``quick`` uses smaller buffers)."""
    t0 = time.perf_counter()
    window = CpuWindow().start()
    sizes = Sizes.pick(quick)
    disk_path = Path(disk_path) if disk_path is not None else _default_disk_path()
    result: dict[str, Any] = {}
    result.update(host_probes(sizes))
    result.update(gpu_probes(sizes))
    result.update(disk_probes(disk_path, file_bytes=(32 if quick else 256) << 20, seconds=0.3 if quick else 1.0))
    ordered = {k: result[k] for k in PROBE_KEYS if k in result}
    others = window.others_cores()
    ordered["meta"] = {
        "schema_version": SCHEMA_VERSION,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick, "duration_s": round(time.perf_counter() - t0, 2),
        "disk_path": str(disk_path.resolve()), "machine": machine_identity(),
        "sizes": {"host_bytes": sizes.host_bytes, "gpu_bytes": sizes.gpu_bytes, "repeats": sizes.repeats},
        "contention": {"others_cores": round(others, 3), "contended": others > CONTENDED_CORES,
                       "threshold_cores": CONTENDED_CORES},
    }
    return ordered


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        return None
    if data["meta"].get("schema_version") != SCHEMA_VERSION or not all(k in data for k in PROBE_KEYS):
        return None
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def ensure_probe(run_dir: Path | None, *, reprobe: bool = False, disk_path: Path | None = None,
                 cache: Path | None = None, quick: bool = False) -> dict[str, Any]:
    """This machine's ceilings, measured once and reused; copied to ``run_dir/probe.json`` when given.

    A cached probe is reused unless ``reprobe`` is set, it is unreadable or from another schema, or it was a quick
    probe and a full one is asked for. ``meta.reused`` says which happened. A probe measured while other processes
    used more than ``CONTENDED_CORES`` cores (``meta.contention``) is used for this run but not cached as the
    machine's ceiling (``meta.cached`` false, with a ``meta.note``).
    """
    disk_path = Path(disk_path) if disk_path is not None else _default_disk_path()
    identity = machine_identity()
    cache_file = probe_cache_dir(cache) / f"probe-{_cache_key(identity, disk_path)}.json"
    data = None if reprobe else _read(cache_file)
    if data is not None and data["meta"].get("quick") and not quick:
        data = None
    reused = data is not None
    cached = True
    if data is None:
        data = run_probe(quick=quick, disk_path=disk_path)
        contention = data["meta"].get("contention") or {}
        if contention.get("contended"):
            cached = False
            data["meta"]["note"] = (f"contended: other processes used {contention.get('others_cores')} cores while "
                                    "it measured; used for this run only, not cached as this machine's ceiling")
        else:
            _write(cache_file, data)
    data["meta"] = {**data["meta"], "reused": reused, "cached": cached, "cache_file": str(cache_file)}
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        _write(Path(run_dir) / PROBE_FILE, data)
    return data


def ensure_probe_isolated(run_dir: Path, *, reprobe: bool = False, disk_path: Path | None = None,
                          timeout_s: float = 600.0) -> tuple[dict[str, Any], str | None]:
    """``ensure_probe`` in a child process (``python -m accessbench probe RUN_DIR --json``); (probe, problem).

    The GPU ceilings need a CUDA context; made in the parent, it would stay for the whole sweep, and under the
    EXCLUSIVE_PROCESS compute mode no worker could then create its own. The child exits and takes its context with
    it, exactly like the per-configuration workers. On failure the probe is ``{}`` and ``problem`` says why (one
    line): the run goes on and the report says the ceilings are missing.
    """
    cmd = [sys.executable, "-m", "accessbench", "probe", str(run_dir), "--json"]
    if disk_path is not None:
        cmd += ["--disk", str(disk_path)]
    if not reprobe:
        cmd.append("--cached")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {}, f"the probe did not finish in {timeout_s:g} s"
    except OSError as exc:
        return {}, f"the probe could not start: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {}, f"the probe failed: {last}"
    data = _read(Path(run_dir) / PROBE_FILE)
    if data is None:
        return {}, f"the probe wrote no readable {PROBE_FILE}"
    return data, None
