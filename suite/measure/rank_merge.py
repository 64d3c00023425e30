"""One record for a configuration measured on several ranks: per-rank records reduced field by field.

Every ``Record`` field has one rule (a test keeps it so when fields are added):

- the same on every rank by construction (identity, shape of the work, agreed step counts): rank 0's value;
- times (medians and their spread per phase, wall, prepare, windows) and per-device peaks: the **maximum over ranks
  of each rank's own value**, e.g. ``step_s`` is the slowest rank's median step (not the median of per-step maxima);
- counters (rows, bytes per tier, I/O rate), throughputs (each rank's rate over its own busy time; the ranks run
  concurrently) and per-GPU energy and power: the **sum** over ranks;
- sampled GPU utilisation and clocks: the mean over ranks;
- machine-wide meters (RAPL CPU energy, system CPU utilisation) and rank 0's files: rank 0's value (every rank
  reads the same meter, so summing would count it several times);
- ``ceiling_fraction``: the summed ``feature_gbps`` over ``world`` times the (per-rank) ceiling;
- ``hit_rate``: recomputed from the summed hits (each rank's ``hit_rate x rows``) over the summed rows;
  ``read_amplification``: summed disk bytes over the summed bytes of the rows read from disk;
- ``access_extras``: integers are summed (totals over ranks: counters such as ``unique_rows``, and per-rank sizes
  such as ``cache_rows``, which become the rows cached on all ranks together), except ``ranks``; other values are
  kept when equal on every rank and otherwise left to ``per_rank``; each rank's own index (``rank``) is dropped.

A value missing (null) on some ranks but not others makes the reduced value null, with a note naming the ranks.
``per_rank`` keeps each rank's own figures (``PER_RANK_FIELDS`` and its ``access_extras``).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from accessbench import schema

from .records import Record

__all__ = ["IN_PROCESS_NOTE", "PER_RANK_FIELDS", "RULES", "lockstep_intact", "merge_records"]

IN_PROCESS_NOTE = ("ran under torchrun with {world} ranks, in-process (no worker isolation: the process group lives "
                   "in this process); times are the slowest rank's, counters and rates summed over ranks, each rank's "
                   "own figures in per_rank")

#: Field name -> rule name; every Record field has one (declared in ``accessbench.schema``).
RULES: dict[str, str] = {f.name: f.merge for f in schema.FIELDS}

#: Each rank's own figures kept in ``per_rank`` (plus ``rank`` and its ``access_extras``).
PER_RANK_FIELDS: tuple[str, ...] = tuple(f.name for f in schema.FIELDS if f.per_rank)

_REDUCERS: dict[str, Callable[[list[Any]], Any]] = {
    "max": max,
    "sum": sum,
    "mean": statistics.fmean,
}


def lockstep_intact(records: Sequence[Record]) -> bool:
    """True when the ranks ended the configuration in the same state, so their collectives are still paired.

    All ``ok``; or all ``failed`` in the same phase with the same error (a deterministic failure every rank hit at the
    same point). Anything else (one rank failed, others did not) may leave a peer inside a collective it never
    finished, and the process group can no longer be trusted for the next configuration.
    """
    if all(r.status == "ok" for r in records):
        return True
    first = records[0]
    return all(r.status == "failed" and r.failed_phase == first.failed_phase and r.error == first.error
               for r in records)


def _reduce(name: str, rule: str, values: list[Any], notes: list[str]) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if len(present) != len(values):
        ranks = [i for i, v in enumerate(values) if v is not None]
        notes.append(f"{name} null: measured on rank(s) {', '.join(map(str, ranks))} only")
        return None
    return _REDUCERS[rule](present)


def _hit_rate(records: Sequence[Record], notes: list[str]) -> float | None:
    rates = [r.hit_rate for r in records]
    if all(h is None for h in rates):
        return None
    if any(h is None or r.rows is None for h, r in zip(rates, records)):
        notes.append("hit_rate null: not measured on every rank")
        return None
    rows = sum(r.rows or 0 for r in records)
    return sum((r.hit_rate or 0.0) * (r.rows or 0) for r in records) / rows if rows else None


def _read_amplification(records: Sequence[Record], notes: list[str]) -> float | None:
    ras = [r.read_amplification for r in records]
    if all(a is None for a in ras):
        return None
    if any(a is None or not a or r.bytes_disk is None for a, r in zip(ras, records)):
        notes.append("read_amplification null: not measured on every rank")
        return None
    disk = sum(r.bytes_disk or 0 for r in records)
    read_rows_bytes = sum((r.bytes_disk or 0) / (r.read_amplification or 1.0) for r in records)
    return disk / read_rows_bytes if read_rows_bytes else None


def _extras(records: Sequence[Record]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in records[0].access_extras:
        if k == "rank":
            continue
        values = [r.access_extras.get(k) for r in records]
        if not all(k in r.access_extras for r in records):
            continue
        if k != "ranks" and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[k] = sum(values)
        elif all(v == values[0] for v in values):
            out[k] = values[0]
    return out


def _per_rank(rank: int, rec: Record) -> dict[str, Any]:
    entry: dict[str, Any] = {"rank": rank}
    entry.update({f: getattr(rec, f) for f in PER_RANK_FIELDS})
    entry["access_extras"] = dict(rec.access_extras)
    return entry


def merge_records(records: Sequence[Record]) -> Record:
    """The configuration's one record from its ranks' records (rank order); see the module docstring."""
    if not records:
        raise ValueError("merge_records needs at least one rank's record")
    first = records[0]
    world = len(records)
    notes: list[str] = [IN_PROCESS_NOTE.format(world=world)]
    for note in first.notes:
        if note not in notes:
            notes.append(note)
    for rank, rec in enumerate(records[1:], 1):
        notes.extend(f"rank {rank}: {n}" for n in rec.notes if n not in first.notes)
    merged: dict[str, Any] = {}
    for f in dataclasses.fields(Record):
        rule = RULES[f.name]
        values = [getattr(r, f.name) for r in records]
        if rule in ("same", "rank0"):
            merged[f.name] = values[0]
        elif rule == "any":
            merged[f.name] = None if all(v is None for v in values) else any(bool(v) for v in values)
        elif rule != "special":
            merged[f.name] = _reduce(f.name, rule, values, notes)
    merged["ranks"] = world
    failed = [(i, r) for i, r in enumerate(records) if r.status != "ok"]
    if failed:
        rank, bad = failed[0]
        merged["status"], merged["failed_phase"] = "failed", bad.failed_phase
        everywhere = len(failed) == world and all(r.error == bad.error for _, r in failed)
        merged["error"] = bad.error if everywhere else f"rank {rank}: {bad.error}"
        if everywhere:
            notes.append("failed the same way on every rank")
        elif len(failed) < world:
            notes.append(f"failed on rank(s) {', '.join(str(i) for i, _ in failed)} only")
    else:
        merged["status"], merged["failed_phase"], merged["error"] = "ok", None, None
    exact = [r.exact for r in records]
    merged["exact"] = None if any(e is None for e in exact) else all(exact)
    merged["hit_rate"] = _hit_rate(records, notes)
    merged["read_amplification"] = _read_amplification(records, notes)
    gbps, ceiling = merged.get("feature_gbps"), merged.get("ceiling_gbps")  # summed rate against one ceiling per rank
    merged["ceiling_fraction"] = gbps / (ceiling * world) if gbps is not None and ceiling else None
    merged["access_extras"] = _extras(records)
    merged["per_rank"] = [_per_rank(i, r) for i, r in enumerate(records)]
    merged["notes"] = notes
    return Record(**merged)
