"""One configuration measured by several worker processes (``accessbench run --processes N``, in rounds over the
sweep: suite/runner/sweep.py): one record.

Why: on a shared or virtualised machine a whole process can run slower than the next one (where its threads and
pages land, what the hypervisor does), and the steps of one process cannot show that. asv and pyperf measure each
benchmark in several processes for the same reason. The merged record:

- every phase's ``samples`` is the concatenation of the processes' samples, in order; ``sample_runs`` says how many
  each process contributed, so the compare can resample processes first, then steps (reports/intervals.py);
- every phase's median and p10/p90 are recomputed over the pooled samples;
- ``processes`` is N and ``process_medians`` each process's headline median (``schema.HEADLINE_PHASES``: ``step_s``,
  else ``gather_s``), in order;
- everything else (counters, rates, energy, memory, telemetry) is that of the *median process* (the one whose
  headline median is the middle one; for an even N the lower middle), which a note names.

Only successful records merge: the sweep keeps the record of a process that did not finish ok as the
configuration's row, with a note saying which of the N it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from accessbench import schema
from accessbench.stats import summarise

from .phases import capped_samples
from .records import PHASE_FIELDS, Record

__all__ = ["merge_processes"]


def merge_processes(records: Sequence[Record]) -> Record:
    """One record for a configuration measured by ``len(records)`` processes (see the module docstring)."""
    if not records:
        raise ValueError("no records to merge")
    n = len(records)
    if n == 1:
        return records[0]
    failed = next((r for r in records if r.status != "ok"), None)
    if failed is not None:
        raise ValueError(f"cannot merge a {failed.status} record; the sweep keeps it as the configuration's row")
    phase = next((p for p in schema.HEADLINE_PHASES if all(getattr(r, f"{p}_s") is not None for r in records)),
                 None)
    medians: list[float] = [getattr(r, f"{phase}_s") for r in records] if phase else []
    middle = sorted(range(n), key=medians.__getitem__)[(n - 1) // 2] if phase else 0
    out = records[middle]
    cap = max(1, schema.SAMPLES_CAP // n)
    pooled: dict[str, list[float]] = {}
    for rec in records:
        for ph, values in rec.samples.items():
            pooled.setdefault(ph, []).extend(capped_samples(list(values), cap))
    # process boundaries, where every phase of a process kept the same number of samples
    counts = [{len(v) for v in r.samples.values()} for r in records]
    runs = [min(next(iter(c)), cap) for c in counts] if all(len(c) == 1 for c in counts) else None
    out.samples = pooled
    for ph in PHASE_FIELDS:
        med, p10, p90 = summarise(pooled.get(ph, []))
        if med is None:
            continue
        setattr(out, f"{ph}_s", med)
        setattr(out, f"{ph}_s_p10", p10)
        setattr(out, f"{ph}_s_p90", p90)
    out.processes = n
    out.process_medians = medians or None
    out.sample_runs = runs
    out.contended = any(bool(r.contended) for r in records)
    busiest = max((r.cpu_others_cores for r in records if r.cpu_others_cores is not None), default=None)
    if busiest is not None:
        out.cpu_others_cores = busiest
    if phase:
        spread = max(medians) / min(medians) if min(medians) > 0 else math.inf
        listed = ", ".join(f"{m * 1e3:.3g}" for m in medians)
        out.notes.append(f"{n} worker processes measured this configuration: {phase} medians {listed} ms "
                         f"(spread {spread:.2f}x); timings pool their steps, counters, rates "
                         f"and energy are process {middle + 1}'s (the median one); contended if any was, "
                         f"cpu_others_cores the largest")
    if phase and spread > 1.1:
        out.notes.append(f"processes disagree by more than 10% on {phase}_s: drift between processes on this "
                         "machine; judge changes with the interval over processes (report --compare)")
    return out
