"""What a study is: the configurations it runs, the published claims it checks, and how each is judged.

A ``Study`` names configurations (strategies x options x workloads x modes, ceiling rows, simulated rows), each
with a ``role`` the claims refer to; the runner measures them like any sweep (isolation, fsync, resume), each
record labelled with the study's name. A ``Claim`` holds the published figure (value, unit, hardware, source)
and an ``evaluate`` function that turns the measured rows (by role) into an ``Outcome``: the measured value, the
ratio to the published one, and a verdict: reproduced, not reproduced, or not measurable here (with why and
what hardware it needs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from accessbench.suite.measure.config import Config

__all__ = ["Claim", "Context", "Outcome", "Planned", "Published", "Rows", "Study", "Verdict", "faster",
           "needs_rows", "ordering"]

Verdict = Literal["reproduced", "not reproduced", "not measurable here"]
#: The ok rows of a study run, by role (a role's row is absent when it failed, was skipped or was not planned).
Rows = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Context:
    """Where a study is planned: quick or full, the device (``cpu`` or ``cuda``), and what this machine has."""

    quick: bool = False
    device: str = "cpu"
    memory_cap: tuple[bool, str] = (False, "not checked")

    @property
    def cuda(self) -> bool:
        """Whether a CUDA device is in use."""
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class Planned:
    """One configuration of a study with its role (a short name the claims use), or a reason it is not run."""

    role: str
    config: Config
    skip: str | None = None


@dataclass(frozen=True)
class Published:
    """A published figure: value (null for an ordering), unit, the hardware it was measured on, and its source."""

    value: float | None
    unit: str
    hardware: str
    source: str


@dataclass(frozen=True)
class Outcome:
    """A claim judged on this machine: measured value (same unit), the rows behind it (roles), the verdict."""

    verdict: Verdict
    measured: float | None = None
    reason: str = ""
    roles: tuple[str, ...] = ()

    def ratio(self, published: Published) -> float | None:
        """Measured / published, where both are numbers."""
        if self.measured is None or published.value in (None, 0):
            return None
        return self.measured / published.value


@dataclass(frozen=True)
class Claim:
    """A published claim and how a study judges it (``evaluate(rows, ctx) -> Outcome``)."""

    id: str
    text: str
    published: Published
    evaluate: Callable[[Rows, Context], Outcome]
    needs: str = ""  # hardware the claim needs ("a CUDA device"), said when it is not measurable here


@dataclass(frozen=True)
class Study:
    """A study: ``plan(ctx)`` lists its configurations; ``claims`` are judged on the rows they produce."""

    name: str
    title: str
    description: str
    plan: Callable[[Context], list[Planned]]
    claims: tuple[Claim, ...] = field(default_factory=tuple)
    needs_cuda: bool = False


def needs_rows(rows: Rows, roles: Sequence[str], *, metric: str) -> tuple[list[float], str | None]:
    """The ``metric`` of each role's row, or the reason one is missing."""
    values = []
    for role in roles:
        row = rows.get(role)
        if row is None:
            return [], f"no ok row for {role!r} (failed, skipped or not run)"
        value = row.get(metric)
        if value is None:
            return [], f"{role!r} has no {metric} (not measured)"
        values.append(float(value))
    return values, None


def faster(fast: str, slow: str, *, metric: str, at_least: float, claim_needs: str = "") -> Callable[
        [Rows, Context], Outcome]:
    """A speed-up claim: ``slow``'s ``metric`` (seconds) / ``fast``'s, reproduced when >= ``at_least``."""

    def evaluate(rows: Rows, ctx: Context) -> Outcome:
        values, why = needs_rows(rows, [fast, slow], metric=metric)
        if why:
            return Outcome("not measurable here", reason=why + (f"; it needs {claim_needs}" if claim_needs else ""),
                           roles=(fast, slow))
        a, b = values
        ratio = b / a if a > 0 else None
        if ratio is None:
            return Outcome("not measurable here", reason=f"{fast!r} took no time", roles=(fast, slow))
        verdict: Verdict = "reproduced" if ratio >= at_least else "not reproduced"
        return Outcome(verdict, ratio, f"{slow} / {fast} {metric} = {ratio:.2f}x (counts from {at_least:g}x)",
                       (fast, slow))

    return evaluate


def ordering(roles: Sequence[str], *, metric: str, higher_is_better: bool = False) -> Callable[
        [Rows, Context], Outcome]:
    """An ordering claim: ``roles`` best first by ``metric``; reproduced when the measured order is the same."""

    def evaluate(rows: Rows, ctx: Context) -> Outcome:
        values, why = needs_rows(rows, roles, metric=metric)
        if why:
            return Outcome("not measurable here", reason=why, roles=tuple(roles))
        pairs = list(zip(values, values[1:]))
        ok = all((a > b) if higher_is_better else (a < b) for a, b in pairs)
        sign = " > " if higher_is_better else " < "
        text = sign.join(f"{r} {v:.4g}" for r, v in zip(roles, values))
        better = "higher" if higher_is_better else "lower"
        return Outcome("reproduced" if ok else "not reproduced", None, f"{metric} ({better} is better): {text}",
                       tuple(roles))

    return evaluate
