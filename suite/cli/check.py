"""The one command to run on a CUDA machine: the gpu-marked tests, then a short benchmark of every GPU-capable
strategy against pinned host-to-device memcpy; prints the table and writes it under docs/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from accessbench.kernels.device import cuda_available
from accessbench.suite.gpu_checks import CheckRow, discover
from accessbench.suite.telemetry.envstamp import environment

NAME = "check"
HELP = "on a CUDA machine: run the GPU tests and benchmarks, write the table under docs/results/"
ORDER = 40
ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="store_true", required=True, help="run the GPU checks (needs CUDA)")
    p.add_argument("--quick", action="store_true", help="smaller benchmark grids")
    p.add_argument("--skip-tests", action="store_true", help="benchmarks only")
    p.add_argument("--sections", default=None, help="comma-separated section modules to run (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="where the table is written")


def _fmt(v: float | None) -> str:
    if v is None:
        return "null"
    return f"{v:.4g}"


def render_markdown(rows: list[CheckRow], env: dict, tests: str, command: str) -> str:
    """The results table as Markdown, with the machine stamp and the command that produced it."""
    lines = [
        "# accessbench GPU check",
        "",
        f"- command: `{command}`",
        f"- time: {env.get('time')}",
        (f"- gpu: {env.get('gpu')} (driver {env.get('driver')}, CUDA {env.get('cuda')}), torch {env.get('torch')},"
         f" triton {env.get('triton')}"),
        f"- cpu: {env.get('cpu')} ({env.get('cores')} cores), host {env.get('hostname')}, commit {env.get('commit')}",
        f"- gpu tests: {tests}",
        "",
        "Medians of repeated, synchronised measurements; p10..p90 in brackets; `null` = not measured (see note).",
        "",
    ]
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            lines += ["", f"## {section}", "", "| case | strategy | value | unit | p10..p90 | % of reference | note |",
                      "| --- | --- | ---: | --- | --- | ---: | --- |"]
        pct = r.percent_of_reference
        ref = f" of {r.reference_name}" if r.reference_name and pct is not None else ""
        lines.append(f"| {r.case} | {r.strategy} | {_fmt(r.value)} | {r.metric} | {_fmt(r.p10)}..{_fmt(r.p90)} |"
                     f" {'' if pct is None else f'{pct:.1f}%{ref}'} | {r.note} |")
    return "\n".join(lines) + "\n"


def _run_section(module: str, quick: bool) -> tuple[list[CheckRow], str | None]:
    """Rows of one section measured in a fresh process, and an error text if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        proc = subprocess.run([sys.executable, "-m", "accessbench.suite.gpu_checks._section_worker", module, "1" if quick else "0",
                               str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True, check=False)
        rows = [CheckRow(**r) for r in json.loads(out.read_text())] if out.exists() else []
        if proc.returncode == 0:
            return rows, None
        tail = (proc.stderr or "").strip().splitlines()
        return rows, f"exit {proc.returncode}: {tail[-1] if tail else 'no output'}"


def _write(stem: Path, text: str, env: dict, tests: str, rows: list[CheckRow]) -> None:
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"env": env, "tests": tests, "rows": [
        {**r.__dict__, "percent_of_reference": r.percent_of_reference} for r in rows]}, indent=2, default=str))


def run(args: argparse.Namespace) -> int:
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / ".write-test").write_text("ok")
        (args.out / ".write-test").unlink()
    except OSError as exc:
        sys.stderr.write(f"accessbench: error: cannot write results to {args.out}: {exc.strerror or exc}\n")
        return 2
    if not cuda_available():
        sys.stderr.write("accessbench: error: check --gpu needs a CUDA device; torch sees none on this machine\n")
        return 3
    device = torch.device("cuda", torch.cuda.current_device())
    env = environment(device)
    tests = "skipped (--skip-tests)"
    status = 0
    if not args.skip_tests:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                               str(ROOT / "tests")], cwd=ROOT, check=False)
        tests = "passed" if proc.returncode == 0 else f"FAILED (pytest exit {proc.returncode})"
        status = 0 if proc.returncode == 0 else 1
    sections = {m.__name__.rsplit(".", 1)[-1]: m for m in discover()}
    wanted = [w.strip() for w in args.sections.split(",")] if args.sections else list(sections)
    unknown = [w for w in wanted if w not in sections]
    if unknown:
        sys.stderr.write(f"accessbench: error: unknown section(s) {', '.join(unknown)}; valid: {', '.join(sections)}\n")
        return 2
    command = "accessbench check --gpu" + (" --quick" if args.quick else "")
    gpu = (env.get("gpu") or "gpu").replace(" ", "-")
    stem = args.out / f"gpu-check-{gpu}"
    rows: list[CheckRow] = []
    for short in wanted:
        mod = sections[short]
        t0 = time.perf_counter()
        got, error = _run_section(short, args.quick)
        rows.extend(got)
        if error is not None:  # one broken section must not lose the others' numbers
            rows.append(CheckRow(section=getattr(mod, "SECTION", short), case="section failed", strategy="-",
                                 metric="-", value=None, note=error))
            status = 1
        print(f"[check] {short}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        _write(stem, render_markdown(rows, env, tests, command), env, tests, rows)  # after every section
    print(render_markdown(rows, env, tests, command))
    print(f"written: {stem}.md", file=sys.stderr)
    return status
