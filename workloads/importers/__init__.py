"""Importers: local OGB and IGB datasets -> the on-disk graph store (``accessbench.workloads.store``), in bounded memory.

``import_dataset(kind, src, dst, **options)`` dispatches to ``import_ogb`` or ``import_igb``; every option is a
keyword with a default, listed by ``importer_options(kind)`` (for building CLI flags). Layouts, options and
examples: docs/IMPORTERS.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accessbench.kernels.errors import InvalidOptions

from .igb import IGB_SIZES, LABEL_SETS, import_igb
from .ogb import import_ogb

__all__ = ["IGB_SIZES", "IMPORTERS", "LABEL_SETS", "import_dataset", "import_igb", "import_ogb", "importer_options"]

#: kind -> importer; each is ``fn(src, dst, *, name=None, overwrite=False, ...) -> Path``
IMPORTERS: dict[str, Callable[..., Path]] = {"ogb": import_ogb, "igb": import_igb}


def _importer(kind: str) -> Callable[..., Path]:
    try:
        return IMPORTERS[kind]
    except (KeyError, TypeError):
        raise InvalidOptions(f"unknown dataset kind {kind!r}; valid: {', '.join(IMPORTERS)}") from None


def importer_options(kind: str) -> dict[str, Any]:
    """The keyword options of importer ``kind`` with their defaults (``name`` and ``overwrite`` included)."""
    params = inspect.signature(_importer(kind)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def import_dataset(kind: str, src: str | Path, dst: str | Path, **options: Any) -> Path:
    """Import the dataset of ``kind`` ("ogb" or "igb") at ``src`` into a new store at ``dst``; returns ``dst``.

    Unknown kinds and options raise ``InvalidOptions`` listing the valid ones; missing or malformed input files
    raise ``StoreError`` naming the file and what it should hold.
    """
    valid = importer_options(kind)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InvalidOptions(f"the {kind} importer has no option {', '.join(unknown)}; valid: {', '.join(valid)}")
    return _importer(kind)(src, dst, **options)
