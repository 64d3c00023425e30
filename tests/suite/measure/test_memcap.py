"""The worker's memory cap: a real memory cgroup where one can be made, a labelled note where not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accessbench.suite.measure import memcap
from accessbench.suite.measure.config import Config
from accessbench.suite.runner.isolation import run_isolated
from accessbench.workloads.config import Workload


def _cfg(store: Path, cap: int | None) -> Config:
    wl = Workload(name="t", store=str(store), mode="gather", steps=2, warmup_steps=1, gather_ids=64)
    return Config("cpu-centric", wl, "gather", "cpu", memory_cap_bytes=cap)


def test_the_cap_is_part_of_the_key(tiny_store: Path) -> None:
    assert _cfg(tiny_store, None).key != _cfg(tiny_store, 1 << 30).key
    assert _cfg(tiny_store, 1 << 30).key == _cfg(tiny_store, 1 << 30).key


def test_no_memory_controller_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    monkeypatch.setattr(memcap, "_MOUNTS", mounts)
    ok, why = memcap.memory_cap_available()
    assert not ok and "no cgroup hierarchy with a memory controller" in why


def test_v1_hierarchy_is_found_and_limit_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "memory"
    (root / "mine").mkdir(parents=True)
    (tmp_path / "mounts").write_text(f"cgroup {root} cgroup rw,relatime,memory 0 0\n")
    (tmp_path / "cgroup").write_text("4:memory:/mine\n0::/\n")
    monkeypatch.setattr(memcap, "_MOUNTS", tmp_path / "mounts")
    monkeypatch.setattr(memcap, "_CGROUPS", tmp_path / "cgroup")
    cap = memcap.MemoryCap.create("child", 123456)
    assert cap.method == "cgroup-v1" and cap.path == root / "mine" / "child"
    assert (cap.path / "memory.limit_in_bytes").read_text() == "123456"
    for f in cap.path.iterdir():
        f.unlink()
    cap.remove()
    assert not cap.path.exists()


def test_a_capped_worker_runs_in_its_cgroup_or_says_why(tiny_store: Path, tmp_path: Path) -> None:
    rec = run_isolated(_cfg(tiny_store, 2 << 30), run_id="r", run_dir=tmp_path, timeout_s=120)
    assert rec.status == "ok", rec.error
    ok, how = memcap.memory_cap_available()
    if ok:
        assert rec.memory_cap_bytes == 2 << 30 and rec.memory_cap_method == how
        assert any(n.startswith("memory capped as the measured window opened: ") and f"+ {2 << 30} for file pages" in n
                   for n in rec.notes)
    else:
        assert rec.memory_cap_bytes is None and any("memory cap of" in n and how in n for n in rec.notes)


def test_the_cap_is_real_a_worker_over_it_is_killed(tiny_store: Path, tmp_path: Path) -> None:
    ok, how = memcap.memory_cap_available()
    if not ok:
        pytest.skip(f"no memory cgroup here: {how}")
    cap = memcap.MemoryCap.create(f"accessbench-test-{id(tmp_path)}", 64 << 20)
    try:
        # importing torch alone needs more than 64 MiB: the kernel's OOM killer ends the process inside its cgroup.
        # The child waits for a line on stdin, so it is in the cgroup (moved as the runner moves workers) first.
        proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline(); import torch"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cap.add(proc.pid)
        _, err = proc.communicate(b"go\n", timeout=120)
        assert proc.returncode == -9, (proc.returncode, err[-500:])
    finally:
        cap.remove()


def test_tighten_sets_the_limit_to_usage_plus_the_cap(tmp_path: Path) -> None:
    ok, how = memcap.memory_cap_available()
    if not ok:
        pytest.skip(f"no memory cgroup here: {how}")
    cap = memcap.MemoryCap.create(f"accessbench-test-t{id(tmp_path)}", 1 << 30)
    try:
        assert memcap.MemoryCap.from_env(cap.env).path == cap.path
        limit = cap.tighten(8 << 20)
        assert limit == cap.usage_bytes() + (8 << 20) == cap.limit_bytes  # empty cgroup: usage is 0
        assert cap.anon_bytes() == 0 and cap.tighten(4 << 20, base=1 << 20) == 5 << 20
    finally:
        cap.remove()
