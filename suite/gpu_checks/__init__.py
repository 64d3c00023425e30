"""Sections of ``accessbench check --gpu``, one module each, discovered in name order.

A section module defines ``SECTION`` (a title), optionally ``ORDER`` (int, lower runs first; default 50) and
``run(ctx: GpuCheckContext) -> list[CheckRow]``. Each row is one measured number (never invented: a value that
could not be measured is ``None`` with the reason in ``note``). The check command prints every row in one table and
writes it, with the machine stamp, under ``docs/results/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

__all__ = ["CheckRow", "GpuCheckContext", "discover"]


@dataclass(frozen=True)
class CheckRow:
    """One measured figure: ``value`` in ``unit`` (median of repeats), with its spread and a reference."""

    section: str
    case: str  # what was measured, e.g. "gather 512 B rows x 100k ids"
    strategy: str  # a strategy name, or a ceiling such as "memcpy-h2d-pinned"
    metric: str  # e.g. "GB/s", "edges/s", "hit rate"
    value: float | None
    p10: float | None = None
    p90: float | None = None
    reference: float | None = None  # the ceiling or baseline this row is compared against, same unit
    reference_name: str = ""
    note: str = ""

    @property
    def percent_of_reference(self) -> float | None:
        """``value / reference`` in percent, where both exist."""
        if self.value is None or not self.reference:
            return None
        return 100.0 * self.value / self.reference


@dataclass
class GpuCheckContext:
    """What a section gets: the CUDA device, whether to run the quick grid, and a cache of graphs and ceilings."""

    device: torch.device
    quick: bool = False
    out_dir: Path = Path("docs/results")
    shared: dict[str, Any] = field(default_factory=dict)  # sections may leave figures here for later ones


def discover() -> list[ModuleType]:
    """The section modules, in ``ORDER`` then name order."""
    mods = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
            if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "run")), key=lambda m: (getattr(m, "ORDER", 50), m.__name__))
