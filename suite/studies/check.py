"""``accessbench check --gpu``: the GPU tests and the GPU studies in a fixed priority order, within a time budget.

Each part gets an allowance (its share of the budget plus what earlier parts left unused) and runs as a child
process killed at its allowance; rows are appended by the studies as they finish, and ``check.json`` / ``check.md``
in the output directory are rewritten after every part, so a session that ends early keeps what ran. A part whose
allowance is under ``MIN_PART_S`` is skipped for time. Nothing is written to a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .report import markdown_table

__all__ = ["MIN_PART_S", "Part", "PartResult", "allowances", "default_parts", "run_parts", "write_summary"]

#: A part given less than this many seconds is skipped for time (start-up alone costs seconds).
MIN_PART_S = 20.0
#: Seconds kept back from the budget for start-up and the summary.
RESERVE_S = 10.0
#: The checkout's tests (the GPU test parts need a source checkout: an editable install has one).
TESTS = Path(__file__).resolve().parents[2] / "tests"


@dataclass(frozen=True)
class Part:
    """One part: a name, its share of the budget (0..1), and the command that runs it (argv; ``{out}`` is the
    part's output directory)."""

    name: str
    share: float
    argv: tuple[str, ...]
    what: str = ""


@dataclass
class PartResult:
    """What happened to a part: ``ok``, ``failed`` (exit status), ``timed out`` or ``skipped for time``."""

    name: str
    status: str
    allowance_s: float
    seconds: float = 0.0
    returncode: int | None = None
    detail: str = ""
    files: list[str] = field(default_factory=list)


def default_parts(*, quick: bool = True) -> list[Part]:
    """The parts, highest priority first (environment, zero-copy grid vs memcpy, pinning and kernel tests, cached,
    energy, out-of-core)."""
    py = sys.executable
    q = ("--quick",) if quick else ()
    study = (py, "-m", "accessbench", "study", "run")
    pytest = (py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "--rootdir", str(TESTS.parent))
    return [
        Part("environment", 0.03, (py, "-m", "accessbench", "check", "--gpu", "--environment-only", "--out", "{out}"),
             "driver, CUDA, ptxas and GPU facts"),
        Part("pytorch-direct", 0.35, (*study, "pytorch-direct", *q, "--device", "cuda", "--out", "{out}"),
             "the zero-copy gather grid against pinned memcpy, train mode and energy"),
        Part("gpu-tests-zero-copy", 0.17, (*pytest, "tests/kernels/zero_copy", "--junitxml={out}/junit.xml"),
             "GPU tests of pinning and the UVA kernel"),
        Part("caches", 0.15, (*study, "caches", *q, "--device", "cuda", "--out", "{out}"),
             "device caches: simulated policies and the measured 20% cache vs cpu-centric"),
        Part("gpu-tests-rest", 0.12, (*pytest, "tests", "--ignore=tests/kernels/zero_copy",
                                      "--junitxml={out}/junit.xml"), "the other GPU tests (telemetry, energy, ...)"),
        Part("out-of-core", 0.18, (*study, "out-of-core", *q, "--device", "cuda", "--out", "{out}"),
             "out-of-core designs with the device tier"),
    ]


def allowances(parts: Sequence[Part], budget_s: float) -> list[float]:
    """Each part's planned allowance in seconds (its share of the budget less the reserve); they sum to at most
    the budget."""
    usable = max(0.0, budget_s - RESERVE_S)
    total = sum(p.share for p in parts) or 1.0
    return [usable * p.share / total for p in parts]


Runner = Callable[[Part, Path, float], PartResult]


def _subprocess_runner(part: Part, out: Path, allowance_s: float) -> PartResult:
    argv = [a.replace("{out}", str(out)) for a in part.argv]
    log = out / "part.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=allowance_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return PartResult(part.name, "timed out", allowance_s, time.perf_counter() - t0, None,
                              f"killed at its allowance of {allowance_s:.0f} s; rows finished before are kept",
                              [str(log)])
    status = "ok" if rc == 0 else "failed"
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if rc else []
    return PartResult(part.name, status, allowance_s, time.perf_counter() - t0, rc, " ".join(tail)[:300],
                      [str(log)])


def run_parts(parts: Sequence[Part], budget_s: float, out: Path, *, runner: Runner | None = None,
              clock: Callable[[], float] = time.monotonic,
              on_result: Callable[[list[PartResult]], None] | None = None) -> list[PartResult]:
    """Run ``parts`` in order within ``budget_s``: each gets its share plus what earlier parts left, never more than
    what remains of the budget; parts that would get under ``MIN_PART_S`` are skipped for time."""
    run = runner or _subprocess_runner
    planned = allowances(parts, budget_s)
    start = clock()
    carry = 0.0
    results: list[PartResult] = []
    for part, share_s in zip(parts, planned):
        remaining = budget_s - RESERVE_S - (clock() - start)
        allowance = min(share_s + carry, remaining)
        if allowance < MIN_PART_S:
            results.append(PartResult(part.name, "skipped for time", max(0.0, allowance),
                                      detail=f"{max(0.0, remaining):.0f} s of the budget left"))
            carry = 0.0
        else:
            part_out = out / part.name
            part_out.mkdir(parents=True, exist_ok=True)
            t0 = clock()
            res = run(part, part_out, allowance)
            used = clock() - t0
            res.seconds = used if res.seconds == 0.0 else res.seconds
            results.append(res)
            carry = max(0.0, allowance - used)
        if on_result is not None:
            on_result(results)
    return results


def write_summary(out: Path, results: Sequence[PartResult], *, budget_s: float, device: str) -> None:
    """check.json and check.md: what ran, what failed, what was skipped for time (rewritten after every part)."""
    data = {"budget_s": budget_s, "device": device, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "parts": [asdict(r) for r in results]}
    (out / "check.json").write_text(json.dumps(data, indent=1) + "\n")
    rows = [[r.name, r.status, f"{r.allowance_s:.0f}", f"{r.seconds:.0f}",
             "-" if r.returncode is None else r.returncode, r.detail or "-"] for r in results]
    text = "\n".join([f"# accessbench check --gpu ({device}, budget {budget_s:.0f} s)", "",
                      markdown_table(["part", "status", "allowance s", "took s", "exit", "detail"], rows), "",
                      "Each study part's published-vs-measured table is `PART/study.md`; its rows are "
                      "`PART/results.jsonl`.", ""])
    (out / "check.md").write_text(text)
