"""Bad and unusual inputs to `accessbench run` and `report`: one clear line, nothing silently mixed or lost."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from accessbench import schema
from accessbench.suite.cli import main
from accessbench.suite.measure.records import Record, append_record
from accessbench.suite.runner.rundir import RunLock
from accessbench.suite.runner.sweep import prepare_run_dir

FAST = ["-w", "tiny", "-m", "gather", "--device", "cpu", "--steps", "2", "--warmup", "1", "--gather-ids", "64",
        "--no-report", "--no-probe", "--no-isolate"]


def _rows(out: Path) -> list[dict]:
    return schema.read_results(out / schema.RESULTS_FILE).rows


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("accessbench: error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_option_alone_runs_only_the_strategies_it_names(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["run", *FAST, "--out", str(out), "-o", "cpu-centric:prefetch=0,1"]) == 0
    rows = _rows(out)
    assert {r["strategy"] for r in rows} == {"cpu-centric"} and len(rows) == 2


def test_named_strategy_unavailable_here_is_a_skipped_row(tmp_path: Path) -> None:
    out = tmp_path / "s"
    assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric,zero-copy"]) == 0
    by = {r["strategy"]: r for r in _rows(out)}
    assert by["cpu-centric"]["status"] == "ok"
    assert by["zero-copy"]["status"] == "skipped" and "CUDA" in by["zero-copy"]["error"]


def test_negative_fanouts_parse_without_equals(tmp_path: Path) -> None:
    out = tmp_path / "f"
    assert main(["run", "-w", "tiny", "-m", "sample", "--device", "cpu", "--steps", "1", "--warmup", "0",
                 "--no-report", "--no-probe", "--no-isolate", "-s", "cpu-centric", "--fanouts", "-1,-1",
                 "--out", str(out)]) == 0
    (row,) = _rows(out)
    assert row["fanouts"] == [-1, -1] and row["status"] == "ok"


def test_a_run_directory_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    with RunLock(out):
        assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric"]) == 2
    line = _one_error_line(capsys)
    assert f"run directory {out} is in use by pid {os.getpid()}" in line
    assert not (out / schema.RESULTS_FILE).exists() or not _rows(out)


def test_default_run_directories_are_unique(tmp_path: Path) -> None:
    a = prepare_run_dir(None, workload="tiny", base=tmp_path)
    b = prepare_run_dir(None, workload="tiny", base=tmp_path)
    assert a != b and a.is_dir() and b.is_dir()


def test_resume_refuses_another_run_and_reruns_failed_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric"]) == 0
    assert json.loads((out / "run.json").read_text())["strategies"] == ["cpu-centric"]
    # another workload into the same directory
    other = [a if a != "tiny" else "default" for a in FAST]
    assert main(["run", *other, "--out", str(out), "-s", "cpu-centric", "--resume"]) == 2
    assert "holds another run" in _one_error_line(capsys)
    # a failed row is run again by default, kept with --keep-failed
    (row,) = _rows(out)
    failed = dict(row, status="failed", error="disk full earlier")
    (out / schema.RESULTS_FILE).write_text(json.dumps(failed) + "\n")
    assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric", "--resume", "--keep-failed"]) == 0
    assert [r["status"] for r in _rows(out)] == ["failed"]
    assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric", "--resume"]) == 0
    assert [r["status"] for r in _rows(out)] == ["failed", "ok"]
    assert "1 failed one(s) run again" in capsys.readouterr().err


def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    path = tmp_path / schema.RESULTS_FILE
    with pytest.raises(OSError) as info:
        append_record(path, Record(strategy="x", status="ok"))
    assert info.value.filename == str(path) and "cannot append a result row (No space left on device)" in str(
        info.value)


def test_report_refuses_rows_without_a_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / schema.RESULTS_FILE).write_text('{"a": 1}\n{"strategy": "x", "status": "ok"}\n{"b": 2}\n')
    assert main(["report", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "line(s) 1, 3 have no valid status" in line


def test_list_shows_each_option_with_values_default_and_meaning(capsys: pytest.CaptureFixture[str]) -> None:
    from accessbench.kernels import registry

    for name in registry.names():
        docs = registry.option_docs(name)
        assert all(d["meaning"] for d in docs.values()), (name, [k for k, d in docs.items() if not d["meaning"]])
    assert main(["list", "out-of-core", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["options"]["io"]["type"] == "direct|mmap|kvikio" and data["options"]["io"]["default"] == "direct"
    assert "O_DIRECT" in data["options"]["io"]["meaning"]


def test_trace_to_an_unwritable_path_fails_before_sampling(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import accessbench.suite.cli.trace as trace_cmd

    def never(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("sampled before checking the output path")

    monkeypatch.setattr(trace_cmd, "record_trace", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the trace's directory should be
    assert main(["trace", "--workload", "tiny", "-o", str(blocker / "t.pt")]) == 2
    line = _one_error_line(capsys)
    assert "cannot write the trace" in line and str(blocker / "t.pt") in line


def test_the_record_carries_its_ceiling_and_the_fraction_reached(tmp_path: Path) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / schema.PROBE_FILE).write_text(json.dumps({"host_gather_gbps": {"value": 50.0, "unit": "GB/s",
                                                                          "method": "test"}}))
    assert main(["run", *FAST, "--out", str(out), "-s", "cpu-centric"]) == 0
    (row,) = _rows(out)
    assert row["ceiling_key"] == "host_gather_gbps" and row["ceiling_gbps"] == 50.0
    assert row["ceiling_fraction"] == pytest.approx(row["feature_gbps"] / 50.0)
