"""Delivery rates are per-step medians with their spread, not totals over summed seconds."""

from __future__ import annotations

import pytest

from accessbench.stats import summarise
from accessbench.suite.measure.phases import ROWS_KEY
from accessbench.suite.measure.phases import fill_rates as _fill_rates
from accessbench.suite.measure.records import Record


def test_rates_are_medians_of_per_step_rates() -> None:
    steps = [{"gather": 0.001, ROWS_KEY: 1000.0}] * 9 + [{"gather": 0.1, ROWS_KEY: 1000.0}]  # one slow step
    rec = Record()
    _fill_rates(rec, steps, row_bytes=512)
    assert rec.rows_per_s == pytest.approx(1e6)
    assert rec.feature_gbps == pytest.approx(1000 * 512 / 0.001 / 1e9)
    assert rec.feature_gbps_p10 < rec.feature_gbps  # the slow step shows in the spread...
    assert rec.feature_gbps_p90 == pytest.approx(rec.feature_gbps)  # ...not in the median


def test_transfer_counts_in_the_data_time() -> None:
    rec = Record()
    _fill_rates(rec, [{"gather": 0.002, "transfer": 0.002, ROWS_KEY: 100.0}], row_bytes=4)
    assert rec.rows_per_s == pytest.approx(100 / 0.004)


def test_no_rows_no_rate() -> None:
    rec = Record()
    _fill_rates(rec, [{"sample": 0.01}], row_bytes=4)
    assert rec.rows_per_s is None and rec.feature_gbps is None


def test_summarise() -> None:
    assert summarise([]) == (None, None, None)
    assert summarise([2.0]) == (2.0, 2.0, 2.0)
    med, p10, p90 = summarise([float(i) for i in range(1, 12)])
    assert (med, p10, p90) == (6.0, 2.0, 10.0)
