"""Read a run directory robustly: ``results.jsonl`` (torn lines, nulls, failed rows), ``probe.json``, power traces.

Nothing here trusts the files to be complete: an interrupted run leaves a torn last line, an older or newer runner
may add or omit fields, and any measurement may be ``null``. What had to be skipped is listed in ``RunData.notes``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from accessbench import schema

__all__ = [
    "NUMERIC_COLUMNS",
    "PHASES",
    "PROBE_FILE",
    "RESULTS_FILE",
    "TIERS",
    "ReportError",
    "RunData",
    "load_power",
    "load_probe",
    "load_results",
    "load_run",
    "records_frame",
]

RESULTS_FILE = schema.RESULTS_FILE
PROBE_FILE = schema.PROBE_FILE
PHASES: tuple[str, ...] = schema.PHASES
TIERS: tuple[str, ...] = schema.TIERS

_IDENTITY = ("config_key", "run_id", "strategy", "workload", "mode", "device", "ranks", "status", "error",
             "failed_phase")
#: Every numeric record field (from the schema), plus two cached-strategy options the report plots by.
NUMERIC_COLUMNS: tuple[str, ...] = (
    *(f.name for f in schema.FIELDS if f.type in ("int", "float")), "cache_bytes", "cache_fraction",
)


class ReportError(ValueError):
    """A run directory that cannot be reported on (missing, or not a run); the message says what to do."""


@dataclass
class RunData:
    """Everything a report needs from one run directory.

    ``results``: one row per configuration (the last record wins when a key repeats), every column of
    ``NUMERIC_COLUMNS`` present (NaN where not measured), plus ``label`` (strategy and options) and ``options_label``.
    ``probe``: the parsed ``probe.json`` (empty when absent). ``power``: columns ``t_s``, ``power_w``, ``gpu``,
    ``trace`` (the file's stem). ``notes``: what loading skipped or could not read.
    """

    path: Path
    results: pd.DataFrame
    probe: dict[str, Any] = field(default_factory=dict)
    power: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["t_s", "power_w", "gpu", "trace"]))
    claims: dict[str, Any] = field(default_factory=dict)  # a study run's claims.json (empty for a plain run)
    notes: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The run id the records carry, else the directory name."""
        ids = self.results["run_id"].dropna().astype(str).unique() if "run_id" in self.results else []
        return str(ids[0]) if len(ids) else self.path.name


def _options_label(options: Any) -> str:
    if not isinstance(options, dict) or not options:
        return ""
    return ",".join(f"{k}={options[k]}" for k in sorted(options))


def _from_options(options: Any, key: str) -> Any:
    return options.get(key) if isinstance(options, dict) else None


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Turn parsed records into the normalised results frame (see ``RunData.results``)."""
    rows = []
    for rec in records:
        row = dict(rec)
        opts = row.get("options")
        row["options"] = opts if isinstance(opts, dict) else {}
        for key in ("row_bytes", "gather_ids", "cache_bytes", "cache_fraction"):
            if row.get(key) is None:
                row[key] = _from_options(opts, key)
        notes = row.get("notes")
        row["notes"] = [str(n) for n in notes] if isinstance(notes, list) else ([str(notes)] if notes else [])
        row["env"] = row.get("env") if isinstance(row.get("env"), dict) else {}
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in _IDENTITY:
        if col not in df:
            df[col] = None
    for col in NUMERIC_COLUMNS:
        if col not in df:
            df[col] = math.nan
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("options", "env", "notes"):
        if col not in df:
            df[col] = [{} if col != "notes" else [] for _ in range(len(df))]
    df["status"] = df["status"].fillna("ok").astype(str)
    df["strategy"] = df["strategy"].fillna("?").astype(str)
    df["workload"] = df["workload"].fillna("?").astype(str)
    df["mode"] = df["mode"].where(df["mode"].notna(), None)
    df["simulated"] = df["simulated"].fillna(False).astype(bool) if "simulated" in df else False
    df["options_label"] = [_options_label(o) for o in df["options"]]
    df["label"] = [s + (f" [{o}]" if o else "") for s, o in zip(df["strategy"], df["options_label"])]
    multi_dev = df.groupby("workload")["device"].nunique(dropna=True).max() if len(df) else 0
    if multi_dev and multi_dev > 1:
        df["label"] = [f"{lab} @{dev}" if dev else lab for lab, dev in zip(df["label"], df["device"])]
    ranks = pd.to_numeric(df["ranks"], errors="coerce")
    df["label"] = [f"{lab} x{int(r)} ranks" if r > 1 else lab for lab, r in zip(df["label"], ranks.fillna(1))]
    missing_key = df["config_key"].isna()
    if missing_key.any():
        df.loc[missing_key, "config_key"] = [
            json.dumps([s, o, w, m, d, r], sort_keys=True, default=str)
            for s, o, w, m, d, r in zip(*(df.loc[missing_key, c] for c in
                                          ("strategy", "options_label", "workload", "mode", "device", "ranks")))
        ]
    df["config_key"] = df["config_key"].astype(str)
    # a resumed run may hold a key twice (a failed attempt, then a retry): the last record wins
    df = df.drop_duplicates("config_key", keep="last").reset_index(drop=True)
    clash = df.duplicated(["workload", "label"], keep=False)
    df.loc[clash, "label"] = [f"{lab} #{key[:6]}" for lab, key in zip(df.loc[clash, "label"],
                                                                      df.loc[clash, "config_key"])]
    return df


def load_results(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """The results frame of one ``results.jsonl`` file (an empty frame with the known columns when it is empty)."""
    notes = notes if notes is not None else []
    parsed = schema.read_results(path)
    torn_tail = path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    last = max(parsed.bad_lines, default=0)
    for i in parsed.bad_lines:
        if torn_tail and i == last:
            notes.append(f"{path.name}: last line {i} is incomplete (interrupted run?); skipped")
        else:
            notes.append(f"{path.name}: line {i} is not valid JSON; skipped")
    for i in parsed.not_objects:
        notes.append(f"{path.name}: line {i} is not a JSON object; skipped")
    for i in parsed.newer:
        notes.append(f"{path.name}: line {i} has a newer schema_version than {schema.SCHEMA_VERSION}; skipped")
    invalid = parsed.invalid_status()
    if invalid:
        shown = ", ".join(str(i) for i in invalid[:5]) + (" ..." if len(invalid) > 5 else "")
        raise ReportError(f"{path}: line(s) {shown} have no valid status (one of {', '.join(schema.STATUSES)}): "
                          "not result rows accessbench wrote")
    return records_frame(parsed.rows)


def load_probe(path: Path, notes: list[str] | None = None) -> dict[str, Any]:
    """The parsed ``probe.json``; ``{}`` (with a note) when missing or unreadable."""
    notes = notes if notes is not None else []
    if not path.is_file():
        notes.append(f"{path.name}: absent; ceilings not shown")
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        notes.append(f"{path.name}: unreadable ({exc}); ceilings not shown")
        return {}
    if not isinstance(data, dict):
        notes.append(f"{path.name}: not a JSON object; ceilings not shown")
        return {}
    return data


def load_power(run_dir: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """All ``power_*.csv`` traces of a run, concatenated; rows with a non-numeric time or power are dropped."""
    notes = notes if notes is not None else []
    frames = []
    for path in sorted(run_dir.glob("power_*.csv")):
        try:
            df = pd.read_csv(path, on_bad_lines="skip")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
            notes.append(f"{path.name}: unreadable ({exc}); skipped")
            continue
        if not {"t_s", "power_w"} <= set(df.columns):
            notes.append(f"{path.name}: needs columns t_s and power_w, has {', '.join(map(str, df.columns))}; skipped")
            continue
        out = pd.DataFrame({
            "t_s": pd.to_numeric(df["t_s"], errors="coerce"),
            "power_w": pd.to_numeric(df["power_w"], errors="coerce"),
            "gpu": pd.to_numeric(df["gpu"], errors="coerce") if "gpu" in df else 0,
        })
        out = out.dropna(subset=["t_s", "power_w"])
        out["gpu"] = out["gpu"].fillna(0).astype(int)
        out["trace"] = path.stem.removeprefix("power_")
        if len(out):
            frames.append(out)
    if not frames:
        return pd.DataFrame({"t_s": pd.Series(dtype=float), "power_w": pd.Series(dtype=float),
                             "gpu": pd.Series(dtype=int), "trace": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True)


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory; raises ``ReportError`` when it has no ``results.jsonl``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ReportError(f"run directory {path} does not exist")
    results_path = path / RESULTS_FILE
    if not results_path.is_file():
        raise ReportError(f"{path} has no {RESULTS_FILE}; give the directory an `accessbench run` wrote")
    notes: list[str] = []
    results = load_results(results_path, notes)
    if results.empty:
        notes.append(f"{RESULTS_FILE}: no complete records yet")
    return RunData(path=path, results=results, probe=load_probe(path / PROBE_FILE, notes),
                   power=load_power(path, notes), notes=notes, claims=load_claims(path / schema.CLAIMS_FILE, notes))


def load_claims(path: Path, notes: list[str] | None = None) -> dict[str, Any]:
    """A study run's judged claims (``claims.json``); ``{}`` for a plain run or an unreadable file (with a note)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        if notes is not None:
            notes.append(f"{path.name}: not valid JSON; the study's claims are not shown")
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("claims"), list) else {}
