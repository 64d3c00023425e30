"""Shared set-up of the asv benchmarks: parameters, the graphs (built once in ``setup_cache``), strategies.

Parameters: every registered strategy x the presets in ``$ACCESSBENCH_ASV_PRESETS`` (comma-separated, default
``tiny`` so that ``asv run --quick`` finishes in a couple of minutes on two cores). Strategies that cannot run on this
machine raise ``NotImplementedError`` in ``setup`` with the reason, which asv records as skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from accessbench.kernels import registry
from accessbench.kernels.base import AccessStrategy
from accessbench.kernels.device import resolve_device, synchronize
from accessbench.kernels.errors import StrategyUnavailable
from accessbench.kernels.types import GraphData
from accessbench.suite.measure.lifecycle import workload_options
from accessbench.workloads.config import Workload, load_workload
from accessbench.workloads.graphs import graph_path, materialise
from accessbench.workloads.store import open_store

#: Distinct random id sets the gather benchmarks cycle through (so caches and the page cache cannot learn one set).
ID_SETS = 64

__all__ = ["PARAMS", "PARAM_NAMES", "PRESETS", "STRATEGIES", "Base", "median_seconds"]

PRESETS: list[str] = [p.strip() for p in os.environ.get("ACCESSBENCH_ASV_PRESETS", "tiny").split(",") if p.strip()]
STRATEGIES: list[str] = registry.names()
PARAMS = [STRATEGIES, PRESETS]
PARAM_NAMES = ["strategy", "preset"]


def median_seconds(fn: Callable[[], Any], device: torch.device, *, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` calls, the device synchronised at both edges."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


class Base:
    """Graph generation in ``setup_cache`` (once per asv run, shared by every class), a prepared strategy in
    ``setup``; subclasses add the timed bodies."""

    params = PARAMS
    param_names = PARAM_NAMES
    timeout = 300
    mode = "train"

    def setup_cache(self) -> dict[str, str]:
        """Generate (or find in the graph cache) every preset's graph; returns preset -> store path."""
        paths = {}
        for preset in PRESETS:
            materialise(load_workload(preset))
            paths[preset] = str(graph_path(load_workload(preset)))
        return paths

    def setup(self, paths: dict[str, str], strategy: str, preset: str) -> None:
        ok, reason = registry.get(strategy).availability()
        if not ok:
            raise NotImplementedError(f"{strategy}: {reason}")
        self.workload: Workload = load_workload(preset)
        self.graph: GraphData = open_store(Path(paths[preset]))
        self.device = resolve_device("auto")
        try:
            self.strategy: AccessStrategy = registry.create(strategy, **workload_options(strategy, self.workload))
            self.strategy.prepare(self.graph, self.device)
        except StrategyUnavailable as exc:
            raise NotImplementedError(str(exc)) from None
        self.after_setup()

    def after_setup(self) -> None:
        """Per-class preparation of inputs (ids, seed batches, model)."""

    def teardown(self, paths: dict[str, str], strategy: str, preset: str) -> None:
        s = getattr(self, "strategy", None)
        if s is not None:
            s.close()
