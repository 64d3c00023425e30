"""The command line: an end-to-end tiny run, listing, and one clear line (no traceback) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accessbench.suite.cli import main
from accessbench.suite.measure.records import read_records


def test_run_tiny_writes_ok_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["run", "-w", "tiny", "--device", "cpu", "--out", str(out), "--no-report", "--no-probe",
               "-s", "cpu-centric,device-resident", "-o", "cpu-centric:prefetch=0,2"])
    assert rc == 0
    rows, bad = read_records(out / "results.jsonl")
    assert bad == 0 and len(rows) == 3
    assert {(r["strategy"], r["options"].get("prefetch")) for r in rows} == {
        ("cpu-centric", 0), ("cpu-centric", 2), ("device-resident", None)}
    for r in rows:
        assert r["status"] == "ok" and r["exact"] is True and r["device"] == "cpu"
        assert r["step_s"] > 0 and r["sample_s"] > 0 and r["compute_s"] > 0
        assert r["step_s_p10"] <= r["step_s"] <= r["step_s_p90"]
        assert r["gpu_energy_j"] is None and any("gpu energy not measured" in n for n in r["notes"])
        assert r["env"]["torch"] and r["env"]["cores"]
    assert "accessbench results" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["gather", "sample"])
def test_other_modes(tmp_path: Path, mode: str) -> None:
    out = tmp_path / mode
    assert main(["run", "-w", "tiny", "-m", mode, "--device", "cpu", "--out", str(out), "--no-report",
                 "--no-probe", "--no-isolate", "-s", "cpu-centric"]) == 0
    (row,), _ = read_records(out / "results.jsonl")
    assert row["status"] == "ok" and row["mode"] == mode
    if mode == "gather":
        assert row["gather_s"] > 0 and row["feature_gbps"] > 0 and row["rows"] == 2000 * 4
    else:
        assert row["edges_per_s"] > 0 and row["gather_s"] is None


def test_resume_skips_finished(tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["run", "-w", "tiny", "--device", "cpu", "--out", str(out), "--no-report", "--no-probe", "--no-isolate",
            "-s", "cpu-centric"]
    assert main(args) == 0
    with open(out / "results.jsonl", "a") as f:
        f.write('{"torn": ')  # a kill mid-line
    assert main([*args, "--resume", "-s", "cpu-centric,device-resident"]) == 0
    rows, bad = read_records(out / "results.jsonl")
    assert bad == 0
    assert sorted(r["strategy"] for r in rows) == ["cpu-centric", "device-resident"]


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["strategies"]["cpu-centric"]["available"] is True
    assert "default" in data["presets"]


@pytest.mark.parametrize("args, message", [
    (["run", "-w", "nope"], "unknown preset 'nope'"),
    (["run", "-s", "warp-drive"], "unknown strategy 'warp-drive'"),
    (["run", "-w", "tiny", "--fanouts", "0"], "fanout"),
    (["run", "-w", "tiny", "--steps", "0"], "--steps must be >= 1"),
    (["run", "-w", "tiny", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "-w", "tiny", "-o", "cpu-centric:speed=9"], "unknown option 'speed'"),
    (["run", "-w", "tiny", "-o", "cpu-centric:prefetch=-3"], "prefetch"),
    (["run", "-w", "tiny", "--resume"], "--resume needs --out"),
    (["run", "-w", "/no/such/file.toml"], "does not exist"),
    (["run", "-w", "tiny", "--out", "/proc/accessbench"], "not writable"),
    (["make-graph", "/tmp/x", "--nodes", "0"], "num_nodes"),
    (["make-graph", "/tmp/x", "--from", "ogb"], "needs --src"),
    (["make-graph", "/tmp/x", "--from", "igb", "--src", "/tmp", "-x", "nope=1"], "bad --import-option"),
    (["make-graph", "/tmp/x", "--from", "ogb", "--src", "/no/such/dir"], "no such directory"),
])
def test_bad_input_is_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(args)
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cuda_device_absent(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", "-w", "tiny", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["check", "--gpu"]) != 0


def test_corrupt_store_is_one_line(tmp_path: Path, tiny_store: Path) -> None:
    (tiny_store / "features.bin").write_bytes(b"\0" * 10)
    wl = tmp_path / "w.toml"
    wl.write_text(f"store = '{tiny_store}'\n")
    proc = subprocess.run([sys.executable, "-m", "accessbench", "run", "-w", str(wl), "--device", "cpu",
                           "--out", str(tmp_path / "o"), "--no-report", "--no-probe", "-s", "cpu-centric"],
                          capture_output=True, text=True, cwd=Path(__file__).parents[3])
    assert proc.returncode == 1  # the row is recorded as failed, and the exit status says so
    (row,), _ = read_records(tmp_path / "o" / "results.jsonl")
    assert row["status"] == "failed" and row["failed_phase"] == "load_graph" and "truncated" in row["error"]
    assert "Traceback" not in proc.stderr


def test_make_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-graph", str(tmp_path / "g"), "--nodes", "500", "--feat-dim", "4", "--dtype", "bfloat16"]) == 0
    assert "500 nodes" in capsys.readouterr().out
    assert main(["make-graph", str(tmp_path / "g"), "--nodes", "500"]) == 2  # exists, no --overwrite


def test_every_command_has_working_help(capsys: pytest.CaptureFixture[str]) -> None:
    from accessbench.suite.cli import build_parser

    _, commands = build_parser()
    assert {"run", "list", "make-graph", "check", "probe", "report", "trace", "simulate"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: accessbench" in capsys.readouterr().out
