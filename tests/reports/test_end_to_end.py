"""`accessbench run` on the tiny preset leaves report.html, summary.md and summary.csv; the comparison of that real
run with itself passes and with a planted slowdown beyond its spread fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from accessbench.suite.cli import main


@pytest.mark.slow
def test_run_writes_report_and_comparison_gates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["run", "-w", "tiny", "-s", "cpu-centric,device-resident", "--steps", "3", "--out", str(run)]) == 0
    for name in ("results.jsonl", "report.html", "summary.md", "summary.csv"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "cpu-centric" in page and "device-resident" in page and 'class="figure"' in page

    assert main(["report", str(run), "--compare", str(run), "--fail-on-regression", "-o",
                 str(tmp_path / "same.html")]) == 0

    # Plant a slowdown larger than the run's own step-to-step spread (a loaded 2-core machine can spread p10..p90
    # over several times the median, and a 20% change inside that band is honestly "within noise"; the 20% case is
    # tested on hand-made records in test_write.py and test_compare.py).
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    spread = max(max(r["step_s_p90"] / r["step_s"], r["step_s"] / r["step_s_p10"]) for r in records)
    factor = 1.5 * spread
    slow = tmp_path / "slow"
    slow.mkdir()
    lines = []
    for rec in records:
        for key, value in list(rec.items()):
            if key.endswith(("_s", "_s_p10", "_s_p90")) and isinstance(value, (int, float)):
                rec[key] = value * factor
        lines.append(json.dumps(rec))
    (slow / "results.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["report", str(slow), "--compare", str(run), "--fail-on-regression"]) == 1
    assert main(["report", str(run), "--compare", str(slow), "--fail-on-regression"]) == 0  # faster is fine
