"""The result record: one flat JSON line per configuration, units in the names, null for what was not measured.

The fields are declared once, in ``accessbench.schema``; ``Record`` is built from them. ``append_record`` appends
and fsyncs one line; ``read_records`` (the schema's reader) tolerates a torn last line (a run killed mid-write).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import field
from pathlib import Path
from typing import Any

from accessbench import schema

__all__ = ["RESULTS_FILE", "SCHEMA_VERSION", "Record", "append_record", "config_key", "read_records"]

SCHEMA_VERSION = schema.SCHEMA_VERSION
RESULTS_FILE = schema.RESULTS_FILE
PHASE_FIELDS = schema.PHASES


def config_key(strategy: str, options: dict[str, Any], workload: dict[str, Any], mode: str, device: str,
               ranks: int, *, extra: dict[str, Any] | None = None) -> str:
    """A stable hash of what defines a configuration (resume and comparison key on it).

    ``extra``: further defining settings (a memory cap); absent or empty leaves the key as it always was.
    """
    what = {"strategy": strategy, "options": options, "workload": workload, "mode": mode, "device": device,
            "ranks": ranks}
    if extra:
        what["extra"] = extra
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}


def _record_field(f: schema.Field) -> tuple[str, Any, Any]:
    default = f.default
    if isinstance(default, (list, dict)):
        return f.name, _TYPES[f.type], field(default_factory=type(default))
    return f.name, _TYPES[f.type] | None if default is None else _TYPES[f.type], field(default=default)


def _to_json(self: Any) -> str:
    """One JSON line (no trailing newline)."""
    return json.dumps(dataclasses.asdict(self), default=str, allow_nan=False)


#: One configuration's outcome and measurements: a dataclass with exactly the fields of ``accessbench.schema``
#: (declared there with unit, group, rank-merge rule and doc; docs/RESULTS.md lists them).
Record = dataclasses.make_dataclass(
    "Record", [_record_field(f) for f in schema.FIELDS], namespace={"to_json": _to_json, "__module__": __name__},
)


def append_record(path: Path, record: Record) -> None:
    """Append one line and fsync it, so a kill after this returns never loses the row."""
    line = record.to_json() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:  # a full disk or a read-only directory: say which file and what was being done
        raise OSError(exc.errno, f"cannot append a result row ({exc.strerror})", str(path)) from None


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parsed rows of a results file, and how many lines were unusable (``accessbench.schema.read_results``)."""
    parsed = schema.read_results(path)
    return parsed.rows, parsed.bad
