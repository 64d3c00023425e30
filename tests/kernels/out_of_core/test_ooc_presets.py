"""The out-of-core presets: valid, budgets smaller than their stores, options accepted by the strategy."""

from __future__ import annotations

import pytest

from accessbench.kernels import parse_options
from accessbench.workloads.config import load_workload, preset_names

PRESETS = [n for n in preset_names() if n.startswith("ooc-")]


def test_there_is_a_preset_whose_store_is_at_least_twice_the_budget() -> None:
    ratios = {n: load_workload(n).graph.feature_bytes / load_workload(n).memory_budget_bytes for n in PRESETS}
    assert all(r > 1 for r in ratios.values()), ratios
    assert max(ratios.values()) >= 2


@pytest.mark.parametrize("name", PRESETS)
def test_preset_options_parse_with_the_budget(name: str) -> None:
    wl = load_workload(name)
    assert wl.memory_budget_bytes is not None and wl.graph is not None
    opts = parse_options("out-of-core", {**wl.options["out-of-core"], "memory_budget_bytes": wl.memory_budget_bytes})
    assert opts.superbatch >= wl.warmup_steps + wl.steps  # one superbatch covers a whole run: packing is up front
