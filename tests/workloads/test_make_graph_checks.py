"""make-graph: sizes that cannot fit are refused before anything is written, user files are never overwritten
without --overwrite, integer feature dtypes, and --help shows the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.suite.cli import main
from accessbench.workloads.store import open_store, verify_store


def test_huge_node_count_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-graph", str(tmp_path / "g"), "--nodes", "1000000000000000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "of disk but" in err and "choose fewer --nodes" in err
    assert not (tmp_path / "g").exists()


def test_memory_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    gen = sys.modules["accessbench.workloads.generate"]  # the package re-exports the function under this name
    monkeypatch.setattr(gen, "_available_memory", lambda: 1 << 20)
    assert main(["make-graph", str(tmp_path / "g"), "--nodes", "100000"]) == 2
    assert "of memory but" in capsys.readouterr().err and not (tmp_path / "g").exists()


def test_non_empty_directory_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    assert main(["make-graph", str(out), "--nodes", "100", "--feat-dim", "2"]) == 2
    assert "is not empty" in capsys.readouterr().err and (out / "thesis.tex").read_text() == "mine"
    assert main(["make-graph", str(out), "--nodes", "100", "--feat-dim", "2", "--overwrite"]) == 0


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_integer_feature_dtypes(tmp_path: Path, dtype: str) -> None:
    assert main(["make-graph", str(tmp_path / "g"), "--nodes", "300", "--feat-dim", "4", "--dtype", dtype]) == 0
    verify_store(tmp_path / "g")
    assert open_store(tmp_path / "g").features.dtype == getattr(torch, dtype)


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["make-graph", "--help"])
    out = capsys.readouterr().out
    assert "(default: 100000)" in out and "(default: float32)" in out
