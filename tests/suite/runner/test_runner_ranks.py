"""``accessbench run`` under torchrun on the CPU (gloo): two ranks, one merged row per configuration, written by rank 0.

Each test launches ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m accessbench run ...`` (two
interpreters importing torch: slow on a busy machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accessbench.suite.measure.lifecycle import Config
from accessbench.suite.measure.rank_merge import IN_PROCESS_NOTE
from accessbench.suite.measure.records import RESULTS_FILE, read_records
from accessbench.suite.runner.ranks import NOT_SUPPORTED
from accessbench.suite.sim.trace import record_trace
from accessbench.workloads.config import load_workload

ROOT = Path(__file__).resolve().parents[3]
WORLD = 2


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the cache dir comes from conftest's env
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "accessbench", "run", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_cached_on_two_ranks_one_row_per_configuration(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _torchrun("-w", "tiny", "-s", "cached,cpu-centric", "-o", "cached:placement=partition,replicate",
                     "--device", "cpu", "--out", str(out), "--no-probe", "--no-report")
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows, bad = read_records(out / RESULTS_FILE)
    assert bad == 0
    assert [(r["strategy"], r["options"], r["status"], r["ranks"]) for r in rows] == [
        ("cached", {"placement": "partition"}, "ok", WORLD),
        ("cached", {"placement": "replicate"}, "ok", WORLD),
        ("cpu-centric", {}, "skipped", WORLD),
    ]
    wl = load_workload("tiny")
    assert rows[2]["error"] == NOT_SUPPORTED
    assert rows[2]["config_key"] == Config("cpu-centric", wl, "train", "cpu", ranks=WORLD).key
    # each rank trains on its own seeds by the trace's rule: the rows requested are the trace's measured batches
    trace = record_trace(wl, steps=wl.warmup_steps + wl.steps, ranks=WORLD)
    per_rank_rows = [sum(int(b.numel()) for b in trace.batches[r][wl.warmup_steps:]) for r in range(WORLD)]
    by = {r["options"]["placement"]: r for r in rows[:2]}
    for placement, rec in by.items():
        assert rec["config_key"] == Config("cached", wl, "train", "cpu", {"placement": placement}, ranks=WORLD).key
        assert rec["exact"] is True and rec["measured_steps"] == wl.steps
        assert IN_PROCESS_NOTE.format(world=WORLD) in rec["notes"]
        assert [p["rank"] for p in rec["per_rank"]] == [0, 1]
        assert all(p["exact"] is True and p["status"] == "ok" for p in rec["per_rank"])
        assert [p["rows"] for p in rec["per_rank"]] == per_rank_rows
        assert rec["rows"] == sum(per_rank_rows)
        assert rec["step_s"] == max(p["step_s"] for p in rec["per_rank"])
        assert rec["access_extras"]["ranks"] == WORLD and rec["access_extras"]["placement"] == placement
    assert by["partition"]["bytes_peer"] > 0
    assert all(p["bytes_peer"] > 0 for p in by["partition"]["per_rank"])
    assert by["replicate"]["bytes_peer"] == 0
    # a static policy partitioned over two ranks caches a superset of the replicated hot set
    assert by["partition"]["hit_rate"] >= by["replicate"]["hit_rate"] > 0
    assert not (out / "ranks").exists() and not (out / "logs").exists() and not (out / ".work").exists()


_PLUGIN = '''
from dataclasses import dataclass

import torch.distributed as dist

from accessbench.kernels.registry import register
from accessbench.kernels.strategies.device_resident import DeviceResident


@dataclass(frozen=True)
class Options:
    label: int = 0


@register("rank-one-fails")
class RankOneFails(DeviceResident):
    """Fails on rank 1 only, after every collective of the measurement (reading its counters)."""

    Options = Options

    @property
    def supports_ranks(self) -> bool:
        return True

    def stats(self):
        if dist.get_rank() == 1:
            raise RuntimeError("rank one fails on purpose")
        return super().stats()
'''


@pytest.mark.slow
def test_gather_on_two_ranks_and_ranks_that_diverge_stop_the_sweep(tmp_path: Path) -> None:
    plugin = tmp_path / "rank_one_fails.py"
    plugin.write_text(_PLUGIN)
    out = tmp_path / "run"
    proc = _torchrun("-w", "tiny", "-m", "gather", "--steps", "2", "--warmup", "1", "--gather-ids", "256",
                     "-s", "cached,rank-one-fails", "-o", "cached:placement=partition", "-o",
                     "rank-one-fails:label=1,2", "--plugins", str(plugin), "--device", "cpu", "--out", str(out),
                     "--no-probe", "--no-report")
    assert proc.returncode != 0
    assert "ranks diverged in configuration" in proc.stderr and "--resume" in proc.stderr, proc.stderr[-4000:]
    rows, _ = read_records(out / RESULTS_FILE)
    assert len(rows) == 2  # the plugin's second configuration was not run
    cached, row = rows
    # gather mode: each rank gathers its own fresh random ids through the partitioned caches, exactly
    assert (cached["status"], cached["ranks"], cached["exact"]) == ("ok", WORLD, True)
    assert cached["rows"] == WORLD * 256 * cached["measured_steps"] and cached["bytes_peer"] > 0
    assert (row["status"], row["ranks"], row["options"]) == ("failed", WORLD, {"label": 1})
    assert row["error"].startswith("rank 1: ") and "rank one fails on purpose" in row["error"]
    assert [p["status"] for p in row["per_rank"]] == ["ok", "failed"]
    assert any("the sweep stopped after it" in n for n in row["notes"])
