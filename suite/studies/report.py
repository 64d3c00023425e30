"""The study report: one row per published claim (published, measured, ratio, verdict, the rows behind it), the
rows the study measured, and the machine stamp, as ``study.md`` in the run directory.

This is the one Markdown table writer of the suite's studies; ``accessbench study report DIR`` rewrites it from
the run directory's files (so a table under docs/results/ regenerates with the command it names).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import Study

__all__ = ["STUDY_MD", "markdown_table", "write_study_report"]

STUDY_MD = "study.md"


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (cells as given; ``|`` escaped)."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def _published(p: Mapping[str, Any]) -> str:
    value = "ordering" if p.get("value") is None else f"{_num(p['value'])} {p.get('unit', '')}".strip()
    return f"{value} ({p.get('hardware', '?')}; {p.get('source', '?')})"


def _stamp(rows: Sequence[Mapping[str, Any]]) -> str:
    env = next((r.get("env") for r in rows if isinstance(r.get("env"), dict) and r.get("env")), {}) or {}
    keys = ("hostname", "cpu", "cores", "gpu", "driver", "cuda", "pcie", "torch", "triton", "commit", "time")
    return ", ".join(f"{k} {env[k]}" for k in keys if env.get(k) not in (None, ""))


def _row_line(role: str, key: str | None, row: Mapping[str, Any] | None, skipped: str | None) -> list[Any]:
    if row is None:
        return [role, key or "-", "-", "-", "not run" if not skipped else f"skipped: {skipped}", "-", "-", "-", "-"]
    opts = ",".join(f"{k}={v}" for k, v in sorted((row.get("options") or {}).items()))
    status = row.get("status")
    if status != "ok":
        status = f"{status}: {row.get('error') or ''}"[:160]
    if row.get("simulated"):
        status += " (simulated)"
    if row.get("contended"):
        status += " (contended)"
    main = row.get("gather_s") if row.get("mode") == "gather" else row.get("step_s")
    return [role, key or "-", row.get("strategy"), opts or "-", status, row.get("workload"),
            _num(main), _num(row.get("feature_gbps")), _num(row.get("hit_rate"))]


def write_study_report(study: Study, run_dir: Path, judged: Sequence[Any], plan: Mapping[str, Any],
                       rows_by_key: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``study.md`` (claims first, then the rows, the machine stamp and the command) and return its path."""
    claims = []
    for j in judged:
        d = j.to_dict()
        claims.append([d["id"], d["text"], _published(d["published"]), _num(d["measured"]), _num(d["ratio"], ".2f"),
                       f"**{d['verdict']}**", d["reason"] or "-", ", ".join(d["rows"]) or "-"])
    roles = plan["roles"]
    row_lines = [_row_line(role, key, rows_by_key.get(key), plan.get("skipped", {}).get(role))
                 for role, key in roles.items()]
    rows = list(rows_by_key.values())
    quick = " --quick" if plan.get("quick") else ""
    device = "" if plan.get("device", "cpu") == "cpu" else f" --device {plan['device']}"
    text = "\n".join([
        f"# Study `{study.name}`: {study.title}", "",
        study.description, "",
        f"Command: `accessbench study run {study.name}{quick}{device} --out {run_dir}` "
        f"(regenerate this file from the run directory: `accessbench study report {run_dir}`)", "",
        f"Machine: {_stamp(rows) or 'no row carries a machine stamp'}", "",
        f"Written {time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
        "## Claims: published vs measured", "",
        markdown_table(["claim", "what was published", "published (hardware; source)", "measured", "ratio",
                        "verdict", "how judged", "rows"], claims), "",
        "## Rows", "",
        "Main time: `gather_s` in gather mode, else `step_s` (medians, seconds). Simulated rows are replays of a "
        "recorded trace, never measurements.", "",
        markdown_table(["role", "config key", "strategy", "options", "status", "workload", "main s", "GB/s",
                        "hit rate"], row_lines), "",
    ])
    path = run_dir / STUDY_MD
    path.write_text(text + "\n")
    return path
