"""Workload TOML is strict: unknown keys in any section, wrong types and non-table sections are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from accessbench.suite.cli import main
from accessbench.workloads.config import WorkloadError, load_workload, preset_names

BASE = 'name = "t"\n[graph]\nnum_nodes = 100\n'


def _load(tmp_path: Path, text: str):
    f = tmp_path / "w.toml"
    f.write_text(BASE + text)
    return load_workload(str(f))


def test_presets_all_load() -> None:
    assert all(load_workload(p).name for p in preset_names())


@pytest.mark.parametrize(("text", "message"), [
    ("[run]\nstpes = 2\n", r"unknown key\(s\) stpes in \[run\]; valid: warmup_steps, steps, seed"),
    ("[sampling]\nbatchsize = 2\n", r"unknown key\(s\) batchsize in \[sampling\]; valid: batch_size, fanouts"),
    ("[model]\nlayers = 2\n", r"in \[model\]; valid: name, hidden"),
    ("[gather]\nid = 2\n", r"in \[gather\]; valid: ids"),
    ("[run]\nsteps = 2.9\n", r"\[run\] steps must be an integer, got 2.9"),
    ("[run]\nsteps = true\n", r"\[run\] steps must be an integer, got True"),
    ("[sampling]\nfanouts = [10, 2.5]\n", r"fanouts must be a list of integers"),
    ("[model]\nname = 3\n", r"\[model\] name must be a string"),
    ("memory_budget_bytes = 1.5\n", r"memory_budget_bytes must be an integer"),
])
def test_bad_sections(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "w.toml"
    f.write_text(text + BASE if not text.startswith("[") else BASE + text)
    with pytest.raises(WorkloadError, match=message):
        load_workload(str(f))


def test_graph_keys_are_strict(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('name = "t"\n[graph]\nnum_nodes = 100\nnodes = 5\n')
    with pytest.raises(WorkloadError, match=r"nodes in \[graph\]; valid: num_nodes, avg_degree"):
        load_workload(str(f))
    f.write_text('name = "t"\n[graph]\nnum_nodes = 100.5\n')
    with pytest.raises(WorkloadError, match=r"\[graph\] num_nodes must be an integer"):
        load_workload(str(f))


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('name = "t"\nsampling = 5\n[graph]\nnum_nodes = 100\n')
    with pytest.raises(WorkloadError, match=r"sampling must be a table \(\[sampling\] with keys batch_size, fanouts\)"):
        load_workload(str(f))


def test_float_keys_take_integers(tmp_path: Path) -> None:
    w = _load(tmp_path, "avg_degree = 4\n")
    assert w.graph is not None and w.graph.avg_degree == 4


def test_cli_bad_workload_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "w.toml"
    f.write_text(BASE + "[run]\nstpes = 2\n")
    assert main(["run", "-w", str(f), "--device", "cpu", "--out", str(tmp_path / "o"), "--no-report",
                 "--no-probe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key(s) stpes in [run]" in err
