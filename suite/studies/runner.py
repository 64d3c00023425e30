"""Run a study through the one runner, then judge its claims on the rows it wrote.

The run directory holds the ordinary ``results.jsonl`` (every row labelled with the study), the plan
(``study.json``: the study, quick or full, the device, each role's config key or the reason it was skipped) and,
after judging, ``claims.json`` and ``study.md`` (the published-vs-measured table, ``report.py``). ``--resume``
continues a killed run: the plan must be the same study and size; finished rows are kept, failed ones re-run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accessbench import schema
from accessbench.suite.measure.config import Config
from accessbench.suite.measure.records import Record
from accessbench.suite.runner.rundir import write_json
from accessbench.suite.runner.sweep import Sweep, run_sweep
from accessbench.suite.telemetry.settings import TelemetrySettings

from . import StudyError
from .base import Context, Outcome, Planned, Study

__all__ = ["CLAIMS_FILE", "PLAN_FILE", "Judged", "judge", "plan_study", "read_plan", "run_study"]

PLAN_FILE = schema.STUDY_PLAN_FILE
CLAIMS_FILE = schema.CLAIMS_FILE


@dataclasses.dataclass
class Judged:
    """A claim's outcome with the claim (for reports)."""

    claim_id: str
    text: str
    published: dict[str, Any]
    outcome: Outcome
    config_keys: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (claims.json)."""
        pub = self.published
        ratio = (self.outcome.measured / pub["value"]) if (self.outcome.measured is not None and pub.get("value")) \
            else None
        return {"id": self.claim_id, "text": self.text, "published": pub, "measured": self.outcome.measured,
                "ratio": ratio, "verdict": self.outcome.verdict, "reason": self.outcome.reason,
                "rows": {r: self.config_keys.get(r) for r in self.outcome.roles}}


def plan_study(study: Study, ctx: Context) -> list[Planned]:
    """The study's configurations for ``ctx``, each labelled with the study (roles must be unique)."""
    planned = [dataclasses.replace(p, config=dataclasses.replace(p.config, study=study.name))
               for p in study.plan(ctx)]
    roles = [p.role for p in planned]
    dup = sorted({r for r in roles if roles.count(r) > 1})
    if dup:
        raise StudyError(f"study {study.name}: roles planned twice: {', '.join(dup)}")
    return planned


def read_plan(run_dir: Path) -> dict[str, Any]:
    """The plan a study run wrote (StudyError when the directory holds none)."""
    path = run_dir / PLAN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"{run_dir} holds no study run ({PLAN_FILE} missing)") from None
    except ValueError:
        raise StudyError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict) or "study" not in data or "roles" not in data:
        raise StudyError(f"{path} is not a study plan")
    return data


def run_study(study: Study, ctx: Context, run_dir: Path, *, resume: bool = False, isolate: bool = True,
              timeout_s: float | None = None, telemetry: TelemetrySettings | None = None,
              on_start: Callable[[int, int, Config], None] | None = None,
              on_done: Callable[[int, int, Record], None] | None = None) -> list[Judged]:
    """Measure ``study``'s plan into ``run_dir`` (rows appended and fsynced as they finish), then judge it."""
    planned = plan_study(study, ctx)
    plan = {"study": study.name, "quick": ctx.quick, "device": ctx.device,
            "roles": {p.role: p.config.key for p in planned},
            "skipped": {p.role: p.skip for p in planned if p.skip}}
    if resume and (run_dir / PLAN_FILE).exists():
        old = read_plan(run_dir)
        if (old["study"], old.get("quick"), old.get("device")) != (study.name, ctx.quick, ctx.device):
            raise StudyError(f"{run_dir} holds study {old['study']!r} (quick={old.get('quick')}, device="
                             f"{old.get('device')}); --resume needs the same study, size and device")
    elif (run_dir / schema.RESULTS_FILE).exists() and (run_dir / schema.RESULTS_FILE).stat().st_size:
        raise StudyError(f"{run_dir} already holds results; use --resume to continue it or another --out")
    write_json(run_dir / PLAN_FILE, plan)
    sweep = Sweep(configs=[p.config for p in planned if not p.skip],
                  skipped=[(p.config, p.skip) for p in planned if p.skip], run_dir=run_dir, resume=resume,
                  isolate=isolate, timeout_s=timeout_s, telemetry=telemetry or TelemetrySettings(), rerun_failed=True)
    run_sweep(sweep, on_start=on_start, on_done=on_done)
    return judge(study, run_dir, ctx)


def judge(study: Study, run_dir: Path, ctx: Context | None = None) -> list[Judged]:
    """Judge every claim of ``study`` on the ok rows in ``run_dir``; writes claims.json and study.md."""
    from .report import write_study_report

    plan = read_plan(run_dir)
    ctx = ctx or Context(quick=bool(plan.get("quick")), device=str(plan.get("device", "cpu")))
    rows_by_key: dict[str, dict[str, Any]] = {}
    for row in schema.read_results(run_dir / schema.RESULTS_FILE).rows:
        if isinstance(row.get("config_key"), str):
            rows_by_key[row["config_key"]] = row  # the last row of a key wins (a resumed re-run)
    ok = {role: rows_by_key[key] for role, key in plan["roles"].items()
          if key in rows_by_key and rows_by_key[key].get("status") == "ok"}
    judged = []
    for claim in study.claims:
        outcome = claim.evaluate(ok, ctx)
        if outcome.verdict == "not measurable here" and claim.needs and claim.needs not in outcome.reason:
            outcome = dataclasses.replace(outcome, reason=f"{outcome.reason}; needs {claim.needs}")
        judged.append(Judged(claim.id, claim.text, dataclasses.asdict(claim.published), outcome, plan["roles"]))
    write_json(run_dir / CLAIMS_FILE, {"study": study.name, "title": study.title,
                                        "claims": [j.to_dict() for j in judged]})
    write_study_report(study, run_dir, judged, plan, rows_by_key)
    return judged
