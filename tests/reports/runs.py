"""Hand-made run directories for the report tests: records as the runner writes them, with the usual damage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["PROBE", "record", "resampled", "sample_records", "scaled", "write_run"]

PROBE: dict[str, Any] = {
    "host_copy_gbps": {"value": 9.5, "unit": "GB/s", "method": "torch copy_ 256 MiB, 2 threads"},
    "host_gather_gbps": {"value": 4.0, "unit": "GB/s", "method": "index_select 512 B rows"},
    "h2d_pinned_gbps": {"value": None, "unit": "GB/s", "method": "cudaMemcpy", "reason": "no CUDA device"},
    "disk_iops_qd1": {"value": 12000.0, "unit": "IOPS", "method": "O_DIRECT 4 KiB preadv"},
    "meta": {"machine": {"hostname": "testhost", "cpu": "test cpu", "cores": 2}},
}


def record(strategy: str, workload: str = "tiny", *, step_s: float | None = 0.010, spread: float = 0.05,
           status: str = "ok", mode: str = "train", options: dict[str, Any] | None = None, **extra: Any) -> dict:
    """One result record; ``step_s`` with p10/p90 at ``-spread``/``+spread``, phases summing to the step."""
    opts = options or {}
    key = f"{strategy}|{workload}|{mode}|{json.dumps(opts, sort_keys=True)}"
    rec: dict[str, Any] = {
        "schema_version": 1, "run_id": "run-a", "config_key": key, "strategy": strategy, "options": opts,
        "workload": workload, "mode": mode, "device": "cpu", "ranks": 1, "status": status, "error": None,
        "failed_phase": None, "notes": [], "steps": 4, "warmup_steps": 1, "prepare_s": 0.05,
        "env": {"hostname": "testhost", "torch": "2.13", "cores": 2, "time": "2026-01-01T00:00:00"},
        "simulated": False,
    }
    if status == "ok" and step_s is not None:
        rec.update(step_s=step_s, step_s_p10=step_s * (1 - spread), step_s_p90=step_s * (1 + spread),
                   sample_s=0.3 * step_s, gather_s=0.5 * step_s, transfer_s=None, compute_s=0.2 * step_s,
                   feature_gbps=0.01 / step_s, rows_per_s=1e5 / step_s, bytes_needed=4e6, bytes_host=8e6,
                   bytes_h2d=None, bytes_disk=None, bytes_peer=None, read_amplification=None, hit_rate=None,
                   gpu_energy_j=None, gpu_power_w=None, energy_per_step_j=None, cpu_util_process=1.5,
                   cpu_util_system=0.8)
    rec.update(extra)
    return rec


def sample_records() -> list[dict]:
    """A varied run: train workload with a baseline and a failure, gather mode over widths, a cache sweep."""
    recs = [
        record("cpu-centric", step_s=0.010),
        record("cpu-centric", step_s=0.008, options={"prefetch": 2}),
        record("device-resident", step_s=0.004, cpu_util_process=1.0),
        record("zero-copy", status="skipped", error="strategy 'zero-copy' is unavailable here: needs CUDA"),
        record("out-of-core", status="failed", error="OSError: disk full", failed_phase="prepare"),
    ]
    for width in (64, 256, 1024):
        for strategy, speed in (("cpu-centric", 1.0), ("device-resident", 2.5)):
            recs.append(record(strategy, f"gather-{width}", mode="gather", step_s=0.001 * width / 64 / speed,
                               row_bytes=width, feature_gbps=speed * width / 256))
    for frac, hit in ((0.05, 0.4), (0.1, 0.55), (0.2, 0.7)):
        recs.append(record("cached", step_s=0.005, options={"cache_fraction": frac}, hit_rate=hit,
                           energy_per_step_j=1.5 + frac, gpu_power_w=210.0))
    return recs


def write_run(path: Path, records: list[dict], *, probe: dict | None = None, torn: str | None = None,
              power: dict[str, str] | None = None) -> Path:
    """Write ``records`` as ``results.jsonl`` in ``path`` (plus ``torn`` as an unterminated last line)."""
    path.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if torn is not None:
        text += torn
    (path / "results.jsonl").write_text(text)
    if probe is not None:
        (path / "probe.json").write_text(json.dumps(probe))
    for name, csv in (power or {}).items():
        (path / f"power_{name}.csv").write_text(csv)
    return path


def scaled(rec: dict, factor: float) -> dict:
    """A copy of a real record slowed by ``factor``: every time median/p10/p90 and every per-step sample."""
    out = json.loads(json.dumps(rec))
    for key, value in list(out.items()):
        if key.endswith(("_s", "_s_p10", "_s_p90")) and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value * factor
    if isinstance(out.get("samples"), dict):
        out["samples"] = {p: [v * factor for v in vs] for p, vs in out["samples"].items()}
    return out


def resampled(rec: dict, seed: int) -> dict:
    """A copy of a real record whose samples are drawn again from its own samples (with replacement, seeded).

    The medians, p10 and p90 are recomputed from the drawn samples: a second run of the same code whose only
    difference is step-to-step noise, without a second (noisy, slow) real run.
    """
    import random
    import statistics

    out = json.loads(json.dumps(rec))
    rng = random.Random(seed)
    for phase, values in (out.get("samples") or {}).items():
        drawn = [rng.choice(values) for _ in values]
        out["samples"][phase] = drawn
        if len(drawn) > 1:
            q = statistics.quantiles(drawn, n=10, method="inclusive")
            out.update({f"{phase}_s": statistics.median(drawn), f"{phase}_s_p10": q[0], f"{phase}_s_p90": q[-1]})
    return out
