"""What accessbench writes to disk, declared once: record fields, phases, tiers, file names and probe keys.

Data, no behaviour beyond reading a results file: no imports outside the standard library, so every layer (and
``reports``) may import it. Each record field is declared here with its type, unit, group, the rule that merges it
across ranks, and a one-line doc; ``Record`` (suite/measure/records.py), the rank merge, the report's columns, the
telemetry field lists and the field table in docs/RESULTS.md all derive from ``FIELDS`` (a test checks the doc).

Adding a field is one edit: one ``F(...)`` line below (and its line in docs/RESULTS.md, which a test compares).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CLAIMS_FILE",
    "CONTENDED_CORES",
    "FIELDS",
    "FIELD_NAMES",
    "HEADLINE_PHASES",
    "MERGE_RULES",
    "PHASES",
    "POWER_TRACE_PATTERN",
    "PROBE_FILE",
    "PROBE_KEYS",
    "RESULTS_FILE",
    "SAMPLES_CAP",
    "SCHEMA_VERSION",
    "STATUSES",
    "STUDY_PLAN_FILE",
    "TIERS",
    "Field",
    "ResultsFile",
    "by_group",
    "by_name",
    "field_table_markdown",
    "read_results",
    "relevant_ceiling",
    "upgrade_row",
]

#: Version of the record layout; rows of an older version are upgraded on read (missing fields -> null).
SCHEMA_VERSION = 1
#: One JSON line per configuration, in the run directory.
RESULTS_FILE = "results.jsonl"
#: The machine's ceilings (``accessbench probe``), in the run directory and the per-machine cache.
PROBE_FILE = "probe.json"
#: A study run's plan (roles -> config keys) and its judged claims, in the run directory.
STUDY_PLAN_FILE = "study.json"
CLAIMS_FILE = "claims.json"
#: Power trace of one configuration, in the run directory (``{key}`` is its ``config_key``).
POWER_TRACE_PATTERN = "power_{key}.csv"

#: Phases of one step, in the order plots stack them; each is a column ``<phase>_s`` (+ ``_p10``, ``_p90``).
PHASES: tuple[str, ...] = ("sample", "gather", "transfer", "compute", "step")
#: The time a configuration is judged by (reports, compare, --processes): the first of these phases with a median.
#: Every mode times ``step``; ``gather`` is the fallback for rows without it.
HEADLINE_PHASES: tuple[str, ...] = ("step", "gather")
#: Byte tiers a strategy counts (``bytes_<tier>``).
TIERS: tuple[str, ...] = ("host", "h2d", "disk", "peer", "device")
#: Outcomes of a configuration.
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")
#: Keys of probe.json's ceilings, each ``{value, unit, method, ...}`` (value null with the reason where not measured).
PROBE_KEYS: tuple[str, ...] = (
    "host_copy_gbps", "host_gather_gbps", "h2d_pinned_gbps", "h2d_pageable_gbps", "d2h_pinned_gbps",
    "d2h_pageable_gbps", "d2d_gbps", "device_gather_gbps", "p2p_gbps", "disk_iops_qd1", "disk_iops_qd32",
    "disk_iops_qd128", "disk_seq_gbps",
)

#: Per-step samples kept per phase in a record's ``samples`` (more steps are strided down to this many).
SAMPLES_CAP = 512
#: A measured window is ``contended`` when other processes used more than this many cores on average.
CONTENDED_CORES = 0.5

def relevant_ceiling(row: dict[str, Any]) -> str:
    """The probe key that bounds a configuration's feature throughput (``feature_gbps``).

    Rows delivered to the CPU are bounded by host gather bandwidth. On a GPU: device-resident and cached strategies by
    random gather in device memory (a cache at best serves every row from device memory), out-of-core by sequential
    disk bandwidth, CPU-centric and zero-copy by pinned host-to-device bandwidth. Unknown strategies are judged by
    the slowest tier their bytes crossed.
    """
    device = str(row.get("device") or "")
    strategy = str(row.get("strategy") or "")
    if not device.startswith("cuda"):
        return "host_gather_gbps"
    if strategy == "device-resident" or strategy.startswith("cached"):
        return "device_gather_gbps"
    if strategy.startswith("out-of-core"):
        return "disk_seq_gbps"
    if strategy in ("cpu-centric", "zero-copy"):
        return "h2d_pinned_gbps"
    if (row.get("bytes_disk") or 0) > 0:
        return "disk_seq_gbps"
    if (row.get("bytes_h2d") or 0) > 0:
        return "h2d_pinned_gbps"
    return "device_gather_gbps"


#: How a field is reduced over ranks (suite/measure/rank_merge.py): ``same`` (rank 0's; equal by construction),
#: ``max`` (the slowest rank / highest peak), ``sum`` (counters, rates, per-GPU energy), ``mean`` (sampled
#: utilisation and clocks), ``rank0`` (machine-wide meters and rank 0's files), ``any`` (true on any rank),
#: ``special`` (a rule of its own in the merge).
MERGE_RULES: tuple[str, ...] = ("same", "max", "sum", "mean", "rank0", "any", "special")


@dataclass(frozen=True)
class Field:
    """One record field.

    ``type``: ``int``, ``float``, ``str``, ``bool``, ``list`` or ``dict``; ``unit``: ``s``, ``bytes``, ``J``, ``W``,
    ``%``, ``GB/s``, ``1/s``, ``MHz``, ``count``, ``cores``, ``ratio`` or ``""``; ``group``: where docs and reports list it;
    ``merge``: one of ``MERGE_RULES``; ``per_rank``: kept in each rank's ``per_rank`` entry.
    """

    name: str
    type: str
    unit: str
    group: str
    merge: str
    doc: str
    per_rank: bool = False

    @property
    def default(self) -> Any:
        """The value of a fresh record: empty containers, the schema version, ``failed``, ``1`` rank, else null."""
        if self.name == "schema_version":
            return SCHEMA_VERSION
        if self.name == "status":
            return "failed"
        if self.name == "ranks":
            return 1
        if self.name == "simulated":
            return False
        if self.name in ("run_id", "config_key", "strategy", "workload", "mode", "device"):
            return ""
        if self.type in ("list", "dict") and self.name not in _NULLABLE_CONTAINERS:
            return [] if self.type == "list" else {}
        return None


_NULLABLE_CONTAINERS = ("fanouts", "per_rank", "cpu_affinity", "process_medians", "sample_runs")


def F(name: str, type_: str, unit: str, group: str, merge: str, doc: str, *, per_rank: bool = False) -> Field:
    return Field(name, type_, unit, group, merge, doc, per_rank)


def _phase_fields() -> list[Field]:
    out = []
    for p in PHASES:
        out.append(F(f"{p}_s", "float", "s", "timing", "max", f"median {p} seconds over the measured steps",
                     per_rank=True))
        out.append(F(f"{p}_s_p10", "float", "s", "timing", "max", f"10th percentile of {p} seconds",
                     per_rank=p == "step"))
        out.append(F(f"{p}_s_p90", "float", "s", "timing", "max", f"90th percentile of {p} seconds",
                     per_rank=p == "step"))
    return out


def _rate(name: str, unit: str, doc: str) -> list[Field]:
    return [F(name, "float", unit, "throughput", "sum", doc, per_rank=True),
            F(f"{name}_p10", "float", unit, "throughput", "sum", f"10th percentile of the per-step {name}"),
            F(f"{name}_p90", "float", unit, "throughput", "sum", f"90th percentile of the per-step {name}")]


#: Every record field, in the order a record is written.
FIELDS: tuple[Field, ...] = (
    # identity
    F("schema_version", "int", "", "identity", "same", "version of this layout (SCHEMA_VERSION)"),
    F("run_id", "str", "", "identity", "same", "random id of the `accessbench run` invocation that wrote the row"),
    F("config_key", "str", "", "identity", "same",
      "stable hash of (strategy, options, workload fields, mode, device as asked, ranks); resume and compare key on it"),
    F("strategy", "str", "", "identity", "same", "registered strategy name"),
    F("options", "dict", "", "identity", "same", "the strategy options given (defaults omitted)"),
    F("workload", "str", "", "identity", "same", "preset or workload name"),
    F("mode", "str", "", "identity", "same", "`gather`, `sample` or `train`"),
    F("device", "str", "", "identity", "same", "the device used (`cpu`, `cuda:0`)", per_rank=True),
    F("ranks", "int", "count", "identity", "special", "ranks that measured the row (1 unless launched by torchrun)"),
    # outcome
    F("status", "str", "", "outcome", "special", "`ok`, `failed` (with `error`, `failed_phase`) or `skipped`",
      per_rank=True),
    F("error", "str", "", "outcome", "special", "what went wrong (failed) or why it could not run (skipped)",
      per_rank=True),
    F("failed_phase", "str", "", "outcome", "special",
      "`setup`, `load_graph`, `prepare`, `warmup`, `verify`, `measure`, `gather`, `sample`, `train`, `load`, `close`",
      per_rank=True),
    F("notes", "list", "", "outcome", "special", "why a field is null, overlap, coarse windows, clamped values"),
    F("exact", "bool", "", "outcome", "special",
      "the strategy's rows were compared bit for bit with `features[ids]` (a mismatch fails the row)", per_rank=True),
    # shape of the work
    F("steps", "int", "count", "work", "same", "measured steps asked for"),
    F("warmup_steps", "int", "count", "work", "same", "warm-up steps run and discarded"),
    F("batch_size", "int", "count", "work", "same", "seeds per step (sample and train modes)"),
    F("fanouts", "list", "", "work", "same", "neighbours sampled per hop (-1 keeps all)"),
    F("gather_ids", "int", "count", "work", "same", "ids per step in gather mode"),
    F("num_nodes", "int", "count", "work", "same", "nodes in the graph"),
    F("num_edges", "int", "count", "work", "same", "edges in the graph (CSR entries)"),
    F("feat_dim", "int", "count", "work", "same", "feature columns per row"),
    F("dtype", "str", "", "work", "same", "feature dtype (`float32`, `float16`, ...)"),
    F("row_bytes", "int", "bytes", "work", "same", "bytes of one feature row"),
    # timing
    F("load_graph_s", "float", "s", "timing", "max", "opening or generating the store"),
    F("prepare_s", "float", "s", "timing", "max", "the strategy's placement, synchronised", per_rank=True),
    *_phase_fields(),
    F("wall_s", "float", "s", "timing", "max", "all measured steps, end to end", per_rank=True),
    F("overlapped", "bool", "", "timing", "any",
      "sample/gather/transfer ran in the background, hidden behind compute (step_s < their sum)"),
    # throughput
    *_rate("rows_per_s", "1/s", "median over steps of rows delivered / the step's gather + transfer seconds"),
    *_rate("feature_gbps", "GB/s", "the same per-step rate in feature bytes (1e9 bytes/s)"),
    F("edges_per_s", "float", "1/s", "throughput", "sum", "edges sampled / sampling seconds", per_rank=True),
    F("ceiling_key", "str", "", "throughput", "same",
      "the probe ceiling that bounds feature_gbps (`relevant_ceiling`), when probe.json was in the run directory"),
    F("ceiling_gbps", "float", "GB/s", "throughput", "same", "that ceiling's measured value on this machine"),
    F("ceiling_fraction", "float", "ratio", "throughput", "special", "feature_gbps / ceiling_gbps"),
    # data movement
    F("rows", "int", "count", "data", "sum", "rows requested in the measured steps", per_rank=True),
    F("bytes_needed", "int", "bytes", "data", "sum", "feature bytes of the rows requested", per_rank=True),
    F("bytes_host", "int", "bytes", "data", "sum", "host-memory traffic of the gather (reads + writes)",
      per_rank=True),
    F("bytes_h2d", "int", "bytes", "data", "sum", "bytes copied or read host-to-device (features and structure)",
      per_rank=True),
    F("bytes_disk", "int", "bytes", "data", "sum", "bytes read from storage", per_rank=True),
    F("bytes_peer", "int", "bytes", "data", "sum", "bytes read from other GPUs or ranks", per_rank=True),
    F("bytes_device", "int", "bytes", "data", "sum", "device-memory traffic of the gather (reads + writes)",
      per_rank=True),
    F("read_amplification", "float", "ratio", "data", "special", "`bytes_disk / bytes_needed` (null without disk)"),
    F("hit_rate", "float", "ratio", "data", "special", "rows served by any cache tier / rows requested",
      per_rank=True),
    F("iops", "float", "1/s", "data", "sum", "storage operations / data seconds (null without disk)"),
    F("access_extras", "dict", "", "data", "special", "the strategy's own counters, flat (docs/RESULTS.md)"),
    # energy and utilisation
    F("gpu_energy_j", "float", "J", "gpu", "sum", "GPU energy over the measured window (NVML counter)",
      per_rank=True),
    F("gpu_power_w", "float", "W", "gpu", "sum", "GPU energy / window", per_rank=True),
    F("cpu_energy_j", "float", "J", "cpu", "rank0", "CPU package energy over the window (RAPL)"),
    F("cpu_util_process", "float", "ratio", "cpu", "sum", "this process's CPU seconds / wall seconds (1 = one core)"),
    F("cpu_util_system", "float", "ratio", "cpu", "rank0", "busy fraction of all cores, 0..1"),
    F("cpu_others_cores", "float", "cores", "cpu", "rank0",
      "CPU used by other processes during the window: cpu_util_system x cores - cpu_util_process"),
    F("contended", "bool", "", "cpu", "any",
      f"cpu_others_cores > {CONTENDED_CORES} (another process competed for the cores: timings are suspect)"),
    F("sampler", "str", "", "labels", "same",
      "neighbour sampler backend that ran: numba (compiled, CPU tensors) or torch (vectorised ops, any device)"),
    F("cpu_threads", "int", "count", "cpu", "same",
      "torch intra-op threads in the measured window (the worker's placement, or the strategy's threads option)"),
    F("cpu_affinity", "list", "", "cpu", "same",
      "CPUs the process could run on in the measured window (pinned by the placement, else every usable CPU)"),
    F("energy_per_step_j", "float", "J", "gpu", "sum", "gpu_energy_j / measured_steps"),
    F("cpu_dram_energy_j", "float", "J", "cpu", "rank0", "RAPL DRAM energy over the window"),
    F("cpu_energy_per_step_j", "float", "J", "cpu", "rank0", "cpu_energy_j / measured_steps"),
    F("measured_steps", "int", "count", "energy", "same", "steps timed: steps x energy_repeats"),
    F("energy_window_s", "float", "s", "energy", "max", "length of the measured window"),
    F("energy_repeats", "int", "count", "energy", "same", "passes of the measured steps inside the window"),
    F("energy_window_short", "bool", "", "energy", "any", "window shorter than the energy counter's update period"),
    F("gpu_power_max_w", "float", "W", "gpu", "max", "highest sampled GPU power"),
    F("gpu_util_pct", "float", "%", "gpu", "mean", "mean sampled GPU busy"),
    F("gpu_mem_util_pct", "float", "%", "gpu", "mean", "mean sampled memory-controller busy"),
    F("gpu_mem_used_bytes", "int", "bytes", "gpu", "max", "highest sampled device memory in use (all processes)"),
    F("gpu_sm_clock_mhz", "float", "MHz", "gpu", "mean", "median sampled SM clock"),
    F("gpu_mem_clock_mhz", "float", "MHz", "gpu", "mean", "median sampled memory clock"),
    F("pcie_tx_gbps", "float", "GB/s", "gpu", "sum", "mean sampled PCIe traffic out of the GPU"),
    F("pcie_rx_gbps", "float", "GB/s", "gpu", "sum", "mean sampled PCIe traffic into the GPU (zero-copy reads)"),
    F("idle_window_s", "float", "s", "energy", "max", "the idle baseline window (`--idle-baseline`)"),
    F("gpu_idle_power_w", "float", "W", "energy", "sum", "GPU power at idle"),
    F("cpu_idle_power_w", "float", "W", "energy", "rank0", "CPU package power at idle"),
    F("gpu_energy_above_idle_j", "float", "J", "energy", "sum", "gpu_energy_j - gpu_idle_power_w x window"),
    F("cpu_energy_above_idle_j", "float", "J", "energy", "rank0", "cpu_energy_j - cpu_idle_power_w x window"),
    F("power_trace", "str", "", "files", "rank0", "power trace CSV in the run directory", per_rank=True),
    F("profile_trace", "str", "", "files", "rank0", "torch.profiler trace in the run directory"),
    # isolation
    F("worker_exit_code", "int", "", "isolation", "rank0", "the worker's exit status (negative: killed by signal)"),
    F("worker_log", "str", "", "isolation", "rank0", "kept worker output in the run directory"),
    F("per_rank", "list", "", "ranks", "special", "several ranks only: each rank's own figures"),
    # memory
    F("peak_rss_bytes", "int", "bytes", "memory", "sum", "peak resident set of the process", per_rank=True),
    F("peak_device_bytes", "int", "bytes", "memory", "max", "torch.cuda.max_memory_allocated (null on the CPU)",
      per_rank=True),
    # samples
    F("samples", "dict", "s", "samples", "rank0",
      f"per-step seconds of each phase {{phase: [s, ...]}}, at most {SAMPLES_CAP} per phase (evenly strided)"),
    F("processes", "int", "count", "samples", "same",
      "worker processes that measured this configuration (run --processes; null: one)"),
    F("process_medians", "list", "s", "samples", "same",
      "each process's headline median (step_s, else gather_s), in order; several processes only"),
    F("sample_runs", "list", "count", "samples", "same",
      "samples each process contributed to every phase, in order (samples are their concatenation); several "
      "processes only"),
    # machine and labels
    F("env", "dict", "", "machine", "same", "machine and software stamp (docs/RESULTS.md, Machine)"),
    F("simulated", "bool", "", "labels", "same", "true for rows produced by the simulator"),
    F("study", "str", "", "labels", "same", "the study that produced the row (`accessbench study run`), else null"),
    F("memory_cap_bytes", "int", "bytes", "labels", "same",
      "the worker's memory (page cache included) was capped at this many bytes"),
    F("memory_cap_method", "str", "", "labels", "same",
      "how the cap was applied: `cgroup-v1`, `cgroup-v2`, or `page-drop emulation` where no cgroup could be made"),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def by_name(name: str) -> Field:
    """The declared field ``name`` (KeyError if there is none)."""
    return _BY_NAME[name]


def by_group(*groups: str) -> tuple[str, ...]:
    """Names of the fields in ``groups``, in record order."""
    return tuple(f.name for f in FIELDS if f.group in groups)


def upgrade_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of any version <= SCHEMA_VERSION with every declared field present (missing -> its default)."""
    out = {f.name: f.default for f in FIELDS}
    out["status"] = None  # a row without a status is not an outcome: the reader says so
    out.update(row)
    return out


@dataclass
class ResultsFile:
    """A parsed results.jsonl: its rows, and the line numbers of lines it could not use, by why.

    ``bad_lines``: not valid JSON (a torn last line from a kill is one); ``not_objects``: JSON but not an object;
    ``newer``: an object of a newer ``schema_version`` than this reader knows.
    """

    rows: list[dict[str, Any]]
    bad_lines: list[int]
    not_objects: list[int]
    newer: list[int]
    row_lines: list[int] = field(default_factory=list)  # the line number of each row

    def invalid_status(self) -> list[int]:
        """Line numbers of rows whose ``status`` is not one of ``STATUSES`` (not a result row)."""
        return [n for n, r in zip(self.row_lines, self.rows) if r.get("status") not in STATUSES]

    @property
    def bad(self) -> int:
        """How many lines could not be used."""
        return len(self.bad_lines) + len(self.not_objects) + len(self.newer)


def read_results(path: Path) -> ResultsFile:
    """Read a results file: every JSON object line, upgraded; unparsable and newer-version lines by line number.

    A missing file reads as empty. A run killed mid-write leaves a torn last line: it is reported in ``bad_lines``
    (the runner cuts it before resuming; reports skip it).
    """
    rows: list[dict[str, Any]] = []
    bad: list[int] = []
    not_objects: list[int] = []
    newer: list[int] = []
    lines: list[int] = []
    if not path.exists():
        return ResultsFile(rows, bad, not_objects, newer, lines)
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad.append(lineno)
                continue
            if not isinstance(obj, dict):
                not_objects.append(lineno)
                continue
            version = obj.get("schema_version", SCHEMA_VERSION)
            if isinstance(version, int) and version > SCHEMA_VERSION:
                newer.append(lineno)
                continue
            rows.append(obj)
            lines.append(lineno)
    return ResultsFile(rows, bad, not_objects, newer, lines)


def field_table_markdown() -> str:
    """The field table of docs/RESULTS.md (field, type, unit, group, merge over ranks, meaning)."""
    lines = ["| field | type | unit | group | ranks | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for f in FIELDS:
        lines.append(f"| `{f.name}` | {f.type} | {f.unit or '-'} | {f.group} | {f.merge} | {f.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # ``python -m accessbench.schema``: print the field table for docs/RESULTS.md
    print(field_table_markdown())
