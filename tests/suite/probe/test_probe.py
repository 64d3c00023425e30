"""The hardware probe: every key with a method, null with a reason where it cannot run, cached once per machine."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import accessbench.suite.probe.ceilings as probe_mod
import accessbench.suite.probe.disk as disk_mod
from accessbench.suite.cli import main
from accessbench.suite.probe.ceilings import PROBE_KEYS, ensure_probe, run_probe
from accessbench.suite.probe.disk import DISK_KEYS, disk_probes, fio_available
from accessbench.suite.probe.memory import Sizes, host_probes


@pytest.fixture
def no_fio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the Python-threads engine (fast with sub-second runs) whatever is installed."""
    monkeypatch.setattr(disk_mod, "fio_available", lambda: False)


def _finite_positive(entry: dict[str, Any]) -> bool:
    v = entry["value"]
    return isinstance(v, float) and math.isfinite(v) and v > 0


def test_run_probe_quick_measures_every_key(tmp_path: Path, no_fio: None) -> None:
    data = run_probe(quick=True, disk_path=tmp_path)
    assert list(data) == [*PROBE_KEYS, "meta"]
    for key in PROBE_KEYS:
        entry = data[key]
        assert entry["method"], key
        assert entry["unit"] in ("GB/s", "IOPS"), key
        if entry["value"] is None:
            assert entry["reason"], key
        else:
            assert _finite_positive(entry), (key, entry)
    for key in ("host_copy_gbps", "host_gather_gbps", *DISK_KEYS):
        assert _finite_positive(data[key]), key
    copy = data["host_copy_gbps"]
    assert copy["p10"] <= copy["value"] <= copy["p90"] and copy["repeats"] == 5
    if not torch.cuda.is_available():
        assert data["h2d_pinned_gbps"]["value"] is None
        assert "no CUDA device" in data["h2d_pinned_gbps"]["reason"]
    meta = data["meta"]
    assert meta["quick"] is True and meta["machine"]["hostname"] and meta["disk_path"] == str(tmp_path.resolve())
    assert meta["contention"]["others_cores"] >= 0 and isinstance(meta["contention"]["contended"], bool)
    assert not list(tmp_path.iterdir())  # the disk test file is gone
    json.dumps(data)  # serialisable as is


def test_disk_probe_on_a_filesystem_refusing_o_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      no_fio: None) -> None:
    real_open = os.open

    def tmpfs_like_open(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(disk_mod.os, "open", tmpfs_like_open)
    out = disk_probes(tmp_path, file_bytes=1 << 20, seconds=0.05)
    assert set(out) == set(DISK_KEYS)
    for entry in out.values():
        assert entry["value"] is None and "refuses O_DIRECT" in entry["reason"]
    assert not list(tmp_path.iterdir())


def _tmpfs_dir() -> Path | None:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tmpfs" and parts[1] == "/dev/shm" and os.access(parts[1], os.W_OK):
            return Path(parts[1])
    return None


@pytest.mark.skipif(_tmpfs_dir() is None, reason="no writable tmpfs at /dev/shm on this machine")
def test_disk_probe_on_real_tmpfs_is_null_with_reason(no_fio: None) -> None:
    out = disk_probes(_tmpfs_dir(), file_bytes=1 << 20, seconds=0.05)  # type: ignore[arg-type]
    assert all(e["value"] is None and "tmpfs" in e["reason"] for e in out.values())


def test_disk_probe_missing_directory(tmp_path: Path) -> None:
    out = disk_probes(tmp_path / "nope", file_bytes=1 << 20, seconds=0.05)
    assert all(e["value"] is None and "not a directory" in e["reason"] for e in out.values())


@pytest.mark.skipif(not fio_available(), reason="fio is not installed")
def test_fio_reads_the_test_file(tmp_path: Path) -> None:
    path = disk_mod._write_test_file(tmp_path, 4 << 20)
    try:
        read = disk_mod._fio(path, rw="randread", block=4096, depth=4, seconds=1)
    finally:
        path.unlink()
    assert read["iops"] > 0 and read["total_ios"] > 0


def test_fio_engine_is_used_when_present_and_threads_when_it_fails(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def fake_fio(path: Path, *, rw: str, block: int, depth: int, seconds: float) -> dict[str, Any]:
        calls.append((rw, depth))
        return {"iops": 1000.0 * depth, "bw_bytes": 2e9}

    monkeypatch.setattr(disk_mod, "fio_available", lambda: True)
    monkeypatch.setattr(disk_mod, "_fio", fake_fio)
    out = disk_probes(tmp_path, file_bytes=1 << 20, seconds=0.05)
    assert calls == [("randread", 1), ("randread", 32), ("randread", 128), ("read", 16)]
    assert out["disk_iops_qd32"]["value"] == 32000.0 and out["disk_seq_gbps"]["value"] == 2.0
    assert all(e["engine"] == "fio" for e in out.values())

    def broken_fio(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise OSError("fio failed: libaio not available")

    monkeypatch.setattr(disk_mod, "_fio", broken_fio)
    out = disk_probes(tmp_path, file_bytes=1 << 20, seconds=0.05)
    assert all(e["engine"] == "threads" and "libaio not available" in e["method"] for e in out.values())
    assert all(_finite_positive(e) for e in out.values())
    assert not list(tmp_path.iterdir())


def test_host_probes_report_threads_and_sizes() -> None:
    sizes = Sizes(4 << 20, 8 << 20, 1 << 20, 0, 0, repeats=3, warmup=1)
    out = host_probes(sizes)
    assert f"{torch.get_num_threads()} intra-op threads" in out["host_copy_gbps"]["method"]
    assert "2048 uniformly random 512 B rows" in out["host_gather_gbps"]["method"]
    assert all(_finite_positive(e) and e["repeats"] == 3 for e in out.values())


@pytest.fixture
def counted_probe(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Replace the measurement by a cheap fake that records each call's ``quick``."""
    calls: list[bool] = []

    def fake(*, quick: bool = False, disk_path: Path | None = None) -> dict[str, Any]:
        calls.append(quick)
        data: dict[str, Any] = {k: {"value": 1.0 + len(calls), "unit": "GB/s", "method": "fake"} for k in PROBE_KEYS}
        data["meta"] = {"schema_version": probe_mod.SCHEMA_VERSION, "quick": quick, "machine": {}}
        return data

    monkeypatch.setattr(probe_mod, "run_probe", fake)
    return calls


def test_ensure_probe_measures_once_per_machine(tmp_path: Path, counted_probe: list[bool]) -> None:
    cache = tmp_path / "cache"
    first = ensure_probe(tmp_path / "run1", cache=cache, disk_path=tmp_path)
    second = ensure_probe(tmp_path / "run2", cache=cache, disk_path=tmp_path)
    assert counted_probe == [False]
    assert first["meta"]["reused"] is False and second["meta"]["reused"] is True
    assert second["host_copy_gbps"]["value"] == first["host_copy_gbps"]["value"]
    saved = json.loads((tmp_path / "run2" / "probe.json").read_text())
    assert saved["host_copy_gbps"] == first["host_copy_gbps"]
    assert len(list((cache / "probes").glob("probe-*.json"))) == 1
    third = ensure_probe(tmp_path / "run3", cache=cache, disk_path=tmp_path, reprobe=True)
    assert counted_probe == [False, False] and third["meta"]["reused"] is False


def test_quick_probe_does_not_stand_in_for_a_full_one(tmp_path: Path, counted_probe: list[bool]) -> None:
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path, quick=True)
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path, quick=True)
    assert counted_probe == [True]
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path)
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path, quick=True)  # a full one serves a quick request
    assert counted_probe == [True, False]


def test_corrupt_cache_is_measured_again(tmp_path: Path, counted_probe: list[bool]) -> None:
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path)
    (cached,) = (tmp_path / "probes").glob("probe-*.json")
    cached.write_text("{not json")
    ensure_probe(None, cache=tmp_path, disk_path=tmp_path)
    assert counted_probe == [False, False]
    assert json.loads(cached.read_text())["meta"]["schema_version"] == probe_mod.SCHEMA_VERSION


def test_default_cache_follows_accessbench_cache(tmp_path: Path, counted_probe: list[bool],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSBENCH_CACHE", str(tmp_path / "c"))
    data = ensure_probe(None, disk_path=tmp_path)
    assert Path(data["meta"]["cache_file"]).parent == tmp_path / "c" / "probes"


def test_cli_probe_writes_run_dir_and_prints(tmp_path: Path, counted_probe: list[bool],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(tmp_path / "run"), "--disk", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(PROBE_KEYS) <= set(printed)
    assert (tmp_path / "run" / "probe.json").is_file()
    assert main(["probe", "--disk", str(tmp_path), "--cached"]) == 0
    out = capsys.readouterr().out
    assert "host_copy_gbps" in out and "reused from" in out
    assert counted_probe == [False]  # probe measures by default; --cached reused it
    assert main(["probe", "--disk", str(tmp_path / "missing")]) == 2


@pytest.mark.gpu
def test_gpu_ceilings_are_measured_with_cuda(tmp_path: Path, no_fio: None) -> None:
    data = run_probe(quick=True, disk_path=tmp_path)
    for key in ("h2d_pinned_gbps", "h2d_pageable_gbps", "d2h_pinned_gbps", "d2h_pageable_gbps", "d2d_gbps",
                "device_gather_gbps"):
        assert _finite_positive(data[key]), (key, data[key])
        assert data[key]["p10"] <= data[key]["value"] <= data[key]["p90"]
    # device memory is faster than any host link
    assert data["d2d_gbps"]["value"] > data["h2d_pinned_gbps"]["value"]
    if torch.cuda.device_count() < 2:
        assert data["p2p_gbps"]["value"] is None and "two or more" in data["p2p_gbps"]["reason"]
    else:
        assert data["p2p_gbps"]["value"] is None or data["p2p_gbps"]["pairs"]
    assert data["meta"]["machine"]["gpu"]
