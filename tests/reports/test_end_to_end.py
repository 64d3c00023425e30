"""`accessbench run -w tiny` end to end: the report answers the question first, renders in Chromium, and the
regression gate built on the run's own recorded samples fires on a planted 20% slowdown and stays quiet on the
same code.

The second runs are made from the first run's records, not by running again, so that the test is deterministic on
a busy 2-core CI machine: the *slowed* run multiplies every recorded time and per-step sample by 1.2; the *same
code* run draws each phase's samples again from the first run's own samples with a fixed seed (the step-to-step
noise of the same code, nothing else) and recomputes the medians from them. Both copies have ``contended`` cleared:
whether the real run happened to share its cores is the machine's business, and the rule that a contended row is
never a regression is tested on its own in test_compare.py. How often the gate fires on real pairs of runs is
measured, not tested: benchmarks/regression_rates.py and docs/REPORTS.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from accessbench.reports.intervals import ratio_interval
from accessbench.suite.cli import main
from tests.reports.chromium import find_chromium, inspect_page
from tests.reports.runs import resampled, scaled


def _write(path: Path, records: list[dict]) -> Path:
    path.mkdir()
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.slow
def test_run_report_headline_figures_and_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["run", "-w", "tiny", "-s", "cpu-centric,device-resident", "--steps", "30", "--device", "cpu",
                 "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    for name in ("results.jsonl", "report.html", "summary.md", "summary.csv"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text()
    assert "cpu-centric" in page and "device-resident" in page and "<h1>accessbench report:" in page
    figures = re.findall(r'<img class="figure" id="([^"]+)"', page)
    assert len(figures) >= 2 and "fig-distribution-tiny" in figures and "fig-phases-tiny" in figures
    headline = re.search(r'<p class="headline">(tiny \(train\): fastest is [^<]+)</p>', page)
    assert headline, "no headline line"
    assert "cpu-centric" in headline.group(1)
    assert "fastest is" in (run / "summary.md").read_text()
    assert "tiny (train): fastest is" in printed  # the terminal summary carries the same line

    binary = find_chromium()
    if binary:
        shown = inspect_page(run / "report.html", binary=binary)
        assert shown.errors == [] and shown.external_requests == []
        assert len(shown.figures) == len(figures) and all(f["rendered"] == "yes" for f in shown.figures)

    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert all(len(r["samples"]["step"]) == 30 for r in records)
    base = _write(tmp_path / "base", [{**r, "contended": False} for r in records])
    slow = _write(tmp_path / "slow", [{**scaled(r, 1.2), "contended": False} for r in records])
    same = _write(tmp_path / "same", [{**resampled(r, seed=7), "contended": False} for r in records])

    # On a quiet machine 30 steps resolve 20% (the interval of median(1.2 x)/median(x) lies above 1.05). When the
    # machine is so busy that the run's own step-to-step spread cannot resolve 20%, the gate must say "no change"
    # (not guess), and a slowdown beyond that spread must still fire.
    resolvable = all(ratio_interval(r["samples"]["step"], [1.2 * v for v in r["samples"]["step"]]).low > 1.05
                     for r in records)
    capsys.readouterr()
    rc = main(["report", str(slow), "--compare", str(base), "--fail-on-regression"])
    if resolvable:
        assert rc == 1
        assert "REGRESSION tiny" in capsys.readouterr().err
    else:
        assert "interval" in (slow / "summary.md").read_text() or rc == 1
        much = _write(tmp_path / "much", [{**scaled(r, 4.0), "contended": False} for r in records])
        assert main(["report", str(much), "--compare", str(base), "--fail-on-regression"]) == 1
    assert main(["report", str(same), "--compare", str(base), "--fail-on-regression"]) == 0
    assert main(["report", str(base), "--compare", str(slow), "--fail-on-regression"]) == 0  # faster is fine
