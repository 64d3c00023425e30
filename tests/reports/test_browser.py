"""The report in a real browser: headless Chromium opens it from file://, no console errors, every figure rendered.

Skipped with the reason where Chromium is absent (`.ci/browser.sh` installs Debian's chromium package).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accessbench.reports import write_report
from tests.reports.chromium import find_chromium, inspect_page
from tests.reports.runs import PROBE, record, sample_records, write_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None,
                       reason="headless Chromium not found (install Debian's `chromium` package: .ci/browser.sh)"),
]

POWER = "t_s,power_w,gpu\n" + "".join(f"{1.7e9 + i * 0.1:.1f},{150 + (i % 5) * 10},{i % 2}\n" for i in range(60))


def test_full_report_renders_without_errors(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", sample_records(), probe=PROBE, torn='{"stra', power={"abc": POWER})
    base = write_run(tmp_path / "base", sample_records(), probe=PROBE)
    html = write_report(run, compare=base).html
    expected = re.findall(r'<img class="figure" id="([^"]+)"', html.read_text())
    assert len(expected) == 10  # 8 before, plus the comparison and the GB/s-against-ceiling figures

    page = inspect_page(html, binary=find_chromium() or "")

    assert page.errors == []
    assert page.external_requests == []
    assert [f["id"] for f in page.figures] == expected
    for fig in page.figures:
        assert fig["complete"] and fig["naturalWidth"] > 0 and fig["naturalHeight"] > 0, fig
        assert fig["width"] > 0 and fig["height"] > 0, fig
        assert fig["rendered"] == "yes", fig


def test_partial_run_report_renders(tmp_path: Path) -> None:
    run = write_run(tmp_path, [record("cpu-centric"), record("zero-copy", status="failed", error="boom")],
                    torn='{"strategy"')
    page = inspect_page(write_report(run).html, binary=find_chromium() or "")
    assert page.errors == []
    assert len(page.figures) == 2 and all(f["naturalWidth"] > 0 for f in page.figures)  # phases, GB/s


def test_the_check_catches_a_broken_page(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<img class="figure" id="fig-x" src="data:image/png;base64,AAAA">'
                   "<script>console.error('deliberate'); undefinedFunction();</script></body></html>")
    page = inspect_page(bad, binary=find_chromium() or "")
    assert any("deliberate" in e for e in page.console_errors)
    assert any("undefinedFunction" in e for e in page.exceptions)
    assert page.figures[0]["naturalWidth"] == 0
