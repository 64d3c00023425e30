"""Studies: each published claim the suite reproduces is one command (``accessbench study run NAME``).

One module per study in this folder defines ``STUDY`` (a ``base.Study``); ``names()`` and ``get(name)`` find them.
``runner.run_study`` measures a study's configurations through the one runner and judges its claims;
``report`` writes the published-vs-measured table.
"""

from __future__ import annotations

import importlib
import pkgutil

from accessbench.kernels.errors import AccessBenchError

from .base import Study

__all__ = ["StudyError", "all_studies", "get", "names"]

_INTERNAL = {"base", "runner", "report", "check"}


class StudyError(AccessBenchError):
    """An unknown study, or a study directory that cannot be used."""


def all_studies() -> dict[str, Study]:
    """Every study, by name, in module order."""
    out: dict[str, Study] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _INTERNAL:
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        study = getattr(mod, "STUDY", None)
        if isinstance(study, Study):
            out[study.name] = study
    return out


def names() -> list[str]:
    """Study names."""
    return list(all_studies())


def get(name: str) -> Study:
    """The study ``name`` (StudyError listing the valid ones)."""
    studies = all_studies()
    if name not in studies:
        raise StudyError(f"unknown study {name!r}; valid: {', '.join(studies)}")
    return studies[name]
