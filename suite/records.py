"""The result record: one flat JSON line per configuration, units in the names, null for what was not measured.

See docs/RESULTS.md for every field. ``append_record`` appends and fsyncs one line; ``read_records`` tolerates a
torn last line (a run killed mid-write).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_FILE", "SCHEMA_VERSION", "Record", "append_record", "config_key", "read_records"]

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
PHASE_FIELDS = ("sample", "gather", "transfer", "compute", "step")


def config_key(strategy: str, options: dict[str, Any], workload: dict[str, Any], mode: str, device: str,
               ranks: int) -> str:
    """A stable hash of what defines a configuration (resume and comparison key on it)."""
    blob = json.dumps(
        {"strategy": strategy, "options": options, "workload": workload, "mode": mode, "device": device,
         "ranks": ranks},
        sort_keys=True, default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@dataclass
class Record:
    """One configuration's outcome and measurements (fields documented in docs/RESULTS.md)."""

    # identity
    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    config_key: str = ""
    strategy: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    workload: str = ""
    mode: str = ""
    device: str = ""
    ranks: int = 1
    # outcome
    status: str = "failed"
    error: str | None = None
    failed_phase: str | None = None
    notes: list[str] = field(default_factory=list)
    # shape of the work
    steps: int | None = None
    warmup_steps: int | None = None
    batch_size: int | None = None
    fanouts: list[int] | None = None
    gather_ids: int | None = None
    num_nodes: int | None = None
    num_edges: int | None = None
    feat_dim: int | None = None
    dtype: str | None = None
    row_bytes: int | None = None
    exact: bool | None = None  # gathered rows checked with torch.equal against features[ids]
    # timing (seconds; medians over measured steps, p10/p90 spread)
    load_graph_s: float | None = None
    prepare_s: float | None = None
    sample_s: float | None = None
    sample_s_p10: float | None = None
    sample_s_p90: float | None = None
    gather_s: float | None = None
    gather_s_p10: float | None = None
    gather_s_p90: float | None = None
    transfer_s: float | None = None
    transfer_s_p10: float | None = None
    transfer_s_p90: float | None = None
    compute_s: float | None = None
    compute_s_p10: float | None = None
    compute_s_p90: float | None = None
    step_s: float | None = None
    step_s_p10: float | None = None
    step_s_p90: float | None = None
    wall_s: float | None = None  # measured steps, end to end
    overlapped: bool | None = None  # sample/gather/transfer ran in the background, hidden behind compute
    # throughput
    rows_per_s: float | None = None
    rows_per_s_p10: float | None = None
    rows_per_s_p90: float | None = None
    feature_gbps: float | None = None
    feature_gbps_p10: float | None = None
    feature_gbps_p90: float | None = None
    edges_per_s: float | None = None
    # data movement (measured steps only)
    rows: int | None = None
    bytes_needed: int | None = None
    bytes_host: int | None = None
    bytes_h2d: int | None = None
    bytes_disk: int | None = None
    bytes_peer: int | None = None
    bytes_device: int | None = None
    read_amplification: float | None = None
    hit_rate: float | None = None
    iops: float | None = None
    access_extras: dict[str, Any] = field(default_factory=dict)
    # energy and utilisation
    gpu_energy_j: float | None = None
    gpu_power_w: float | None = None
    cpu_energy_j: float | None = None
    cpu_util_process: float | None = None
    cpu_util_system: float | None = None
    energy_per_step_j: float | None = None
    cpu_dram_energy_j: float | None = None  # RAPL DRAM zones over the window
    cpu_energy_per_step_j: float | None = None  # cpu_energy_j / measured_steps
    measured_steps: int | None = None  # steps timed in the window: steps x energy_repeats
    energy_window_s: float | None = None  # the measured window (device synchronised at both edges)
    energy_repeats: int | None = None  # passes of the measured steps in the window (1: no repeat)
    energy_window_short: bool | None = None  # window still under the energy counter's update period
    gpu_power_max_w: float | None = None  # highest sampled power in the window
    gpu_util_pct: float | None = None  # mean sampled GPU busy %
    gpu_mem_util_pct: float | None = None  # mean sampled memory-controller busy %
    gpu_mem_used_bytes: int | None = None  # highest sampled device memory in use (all processes)
    gpu_sm_clock_mhz: float | None = None  # median sampled SM clock
    gpu_mem_clock_mhz: float | None = None  # median sampled memory clock
    pcie_tx_gbps: float | None = None  # mean sampled PCIe tx (GPU -> host)
    pcie_rx_gbps: float | None = None  # mean sampled PCIe rx (host -> GPU)
    idle_window_s: float | None = None  # idle baseline window
    gpu_idle_power_w: float | None = None
    cpu_idle_power_w: float | None = None
    gpu_energy_above_idle_j: float | None = None  # gpu_energy_j - gpu_idle_power_w x energy_window_s
    cpu_energy_above_idle_j: float | None = None
    power_trace: str | None = None  # power trace CSV in the run directory
    profile_trace: str | None = None  # torch.profiler Chrome/Perfetto trace in the run directory
    # isolation
    worker_exit_code: int | None = None  # the worker's exit status (negative: killed by that signal)
    worker_log: str | None = None  # the worker's captured output, in the run directory (kept when not empty)
    # several ranks (torchrun): each rank's own figures, rank order (null for one rank; see suite/rank_merge.py)
    per_rank: list[dict[str, Any]] | None = None
    # memory
    peak_rss_bytes: int | None = None
    peak_device_bytes: int | None = None
    # machine
    env: dict[str, Any] = field(default_factory=dict)
    # labels
    simulated: bool = False

    def to_json(self) -> str:
        """One JSON line (no trailing newline)."""
        return json.dumps(dataclasses.asdict(self), default=str, allow_nan=False)


def append_record(path: Path, record: Record) -> None:
    """Append one line and fsync it, so a kill after this returns never loses the row."""
    line = record.to_json() + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parsed rows of a results file, and how many lines were unreadable (a torn last line from a kill)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    if not path.exists():
        return rows, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                bad += 1
    return rows, bad
