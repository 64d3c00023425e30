"""``accessbench verify STORE``: one line, ok or what is wrong, and a non-zero exit for a bad store."""

from __future__ import annotations

from pathlib import Path

import pytest

from accessbench.suite.cli import main
from accessbench.workloads.generate import GraphSpec, generate


def test_verify_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = generate(GraphSpec(num_nodes=300, avg_degree=3, feat_dim=4), tmp_path / "g")
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: store") and out.count("\n") == 1 and "300 nodes" in out


def test_verify_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = generate(GraphSpec(num_nodes=300, avg_degree=3, feat_dim=4), tmp_path / "g")
    f = path / "labels.bin"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"accessbench: error: store {path}: labels.bin is corrupt (checksum mismatch)\n"


def test_verify_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err == f"accessbench: error: no graph store at {tmp_path / 'nope'} (not a directory)\n"
