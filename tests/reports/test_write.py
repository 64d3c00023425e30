"""write_report and `accessbench report`: the three files, their content, partial runs, comparison exit codes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from accessbench.reports import write_report
from accessbench.reports.load import load_run
from accessbench.reports.tables import summary_frame, workload_tables
from accessbench.suite.cli import main
from tests.reports.runs import PROBE, record, sample_records, write_run

POWER = "t_s,power_w,gpu\n" + "".join(f"{i * 0.1:.1f},{100 + 5 * (i % 7)},0\n" for i in range(40))


def _full_run(path: Path) -> Path:
    return write_run(path, sample_records(), probe=PROBE, torn='{"strategy": "cac', power={"cfg": POWER})


def test_report_files_are_written_and_self_contained(tmp_path: Path) -> None:
    paths = write_report(_full_run(tmp_path / "run"))
    assert paths.html == tmp_path / "run" / "report.html"
    assert paths.markdown.name == "summary.md" and paths.csv.name == "summary.csv"
    page = paths.html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # nothing is fetched: every src/href is inline data or an in-page anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:", "#")), attr
    assert "<link rel=\"stylesheet\"" not in page and "@import" not in page
    figures = re.findall(r'<img class="figure" id="(fig-[^"]+)"', page)
    # phases per train + 3 gather workloads, throughput, energy, hit rate, power
    assert set(figures) >= {"fig-phases-tiny", "fig-throughput-row-width", "fig-energy", "fig-hit-rate", "fig-power"}
    assert len(figures) == 4 + 4 + 1  # and delivered GB/s against the ceiling
    assert "interrupted" in page
    for text in ("testhost", "host random gather", "index_select 512 B rows", "no CUDA device",
                 "OSError: disk full", "needs CUDA", "Failed and skipped"):
        assert text in page


def test_table_marks_best_and_computes_speedup_against_fastest_baseline(tmp_path: Path) -> None:
    run = load_run(_full_run(tmp_path))
    summary = summary_frame(run.results, run.probe)
    tables = {t.workload: t for t in workload_tables(summary)}
    tiny = tables["tiny"]
    frame = tiny.frame
    # the fastest cpu-centric (prefetch=2, 8 ms) is the baseline
    assert frame.loc["cpu-centric [prefetch=2]", "speed-up vs cpu-centric"] == pytest.approx(1.0)
    assert frame.loc["device-resident", "speed-up vs cpu-centric"] == pytest.approx(2.0)
    assert tiny.best["time (ms)"] == {"device-resident"}
    assert tiny.best["hit rate"] == {"cached [cache_fraction=0.2]"}
    assert tiny.best["CPU util (%)"] == {"device-resident"}
    # 1 GB/s delivered against a 4 GB/s host gather ceiling
    assert frame.loc["cpu-centric", "% of ceiling"] == pytest.approx(100 * (0.01 / 0.010) / 4.0)
    # failed and skipped rows are listed last, with empty numbers
    assert list(frame["status"])[-2:] in (["failed", "skipped"], ["skipped", "failed"])
    assert frame.loc["zero-copy", "time (ms)"] != frame.loc["zero-copy", "time (ms)"]  # NaN
    assert "best" in Path(write_report(tmp_path).html).read_text()


def test_markdown_and_csv(tmp_path: Path) -> None:
    paths = write_report(_full_run(tmp_path))
    md = paths.markdown.read_text()
    assert "## Strategies per workload" in md and "### tiny (train)" in md
    assert "| device-resident | ok | **4.00** |" in md
    assert "OSError: disk full" in md and "incomplete" in md
    with paths.csv.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(sample_records())
    assert {"workload", "configuration", "status", "time_s", "speedup", "feature_gbps", "pct_of_ceiling",
            "energy_per_step_j", "hit_rate", "bytes_host", "config_key"} <= set(rows[0])
    dr = next(r for r in rows if r["configuration"] == "device-resident" and r["workload"] == "tiny")
    assert float(dr["time_s"]) == pytest.approx(0.004)


def test_custom_output_path_names_the_siblings(tmp_path: Path) -> None:
    paths = write_report(_full_run(tmp_path / "run"), out=tmp_path / "out" / "nightly.html")
    assert paths.html.is_file() and paths.markdown == tmp_path / "out" / "nightly.md"
    assert paths.csv == tmp_path / "out" / "nightly.csv" and paths.csv.is_file()


def test_partial_and_empty_runs_still_report(tmp_path: Path) -> None:
    only_torn = write_run(tmp_path / "a", [], torn='{"strategy": "cpu-cen')
    page = write_report(only_torn).html.read_text()
    assert "No results yet" in page
    failed_only = write_run(tmp_path / "b", [record("zero-copy", status="failed", error="CUDA error: boom")])
    paths = write_report(failed_only)
    assert "CUDA error: boom" in paths.html.read_text()
    assert "CUDA error: boom" in paths.markdown.read_text()


def _pair(tmp_path: Path, factor: float) -> tuple[Path, Path]:
    base = write_run(tmp_path / "base", sample_records(), probe=PROBE)
    slowed = []
    for rec in sample_records():
        rec = dict(rec)
        for key in list(rec):
            if rec[key] is not None and key.endswith(("_s", "_s_p10", "_s_p90")) and key != "prepare_s":
                rec[key] *= factor
        slowed.append(rec)
    return base, write_run(tmp_path / "new", slowed, probe=PROBE)


def test_cli_fails_on_a_planted_slowdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _pair(tmp_path, 1.2)
    assert main(["report", str(new), "--compare", str(base), "--fail-on-regression"]) == 1
    out = capsys.readouterr()
    assert "REGRESSION tiny / device-resident" in out.err
    assert main(["report", str(new), "--compare", str(base)]) == 0  # reported, not fatal
    md = (new / "summary.md").read_text()
    assert "## Comparison with" in md and "regression" in md
    page = (new / "report.html").read_text()
    assert 'class="regression"' in page


def test_cli_passes_identical_runs_and_honours_threshold(tmp_path: Path) -> None:
    base, new = _pair(tmp_path, 1.0)
    assert main(["report", str(new), "--compare", str(base), "--fail-on-regression"]) == 0
    base2, new2 = _pair(tmp_path / "small", 1.2)
    assert main(["report", str(new2), "--compare", str(base2), "--fail-on-regression", "--threshold", "25%"]) == 0


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_run(tmp_path / "r", [record("cpu-centric")])
    assert main(["report", str(tmp_path / "r"), "--fail-on-regression"]) == 2
    assert "--compare" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "r"), "--threshold", "lots"])
    assert exc.value.code == 2


def test_records_written_by_json_dumps_with_nan_are_tolerated(tmp_path: Path) -> None:
    rec = record("cpu-centric")
    text = json.dumps(rec).replace('"gpu_energy_j": null', '"gpu_energy_j": NaN')
    (tmp_path / "results.jsonl").write_text(text + "\n")
    assert write_report(tmp_path).html.is_file()
