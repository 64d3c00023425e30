"""Studies: the registry, claim rules, a study run through the runner (kill and resume), the CLI, check --gpu."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from accessbench import schema
from accessbench.suite import studies
from accessbench.suite.cli import main
from accessbench.suite.studies.base import Context, Outcome, Published, faster, ordering
from accessbench.suite.studies.check import (
    MIN_PART_S,
    RESERVE_S,
    Part,
    PartResult,
    allowances,
    default_parts,
    run_parts,
)

ROOT = Path(__file__).resolve().parents[3]


def test_every_study_is_listed_with_its_claims(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"out-of-core", "caches", "pytorch-direct", "ceilings"} <= set(studies.names())
    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    for study in studies.all_studies().values():
        assert f"{study.name}" in out
        for claim in study.claims:
            assert f"- {claim.id}: " in out and claim.published.source in out


def test_unknown_study_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "run", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown study 'nope'; valid: " in err[0]


def test_claim_rules() -> None:
    rows = {"fast": {"gather_s": 1.0}, "slow": {"gather_s": 3.0}, "mid": {"gather_s": 2.0}}
    ctx = Context()
    o = faster("fast", "slow", metric="gather_s", at_least=2.0)(rows, ctx)
    assert o.verdict == "reproduced" and o.measured == 3.0
    assert faster("fast", "slow", metric="gather_s", at_least=4.0)(rows, ctx).verdict == "not reproduced"
    missing = faster("fast", "gone", metric="gather_s", at_least=1.0, claim_needs="a GPU")(rows, ctx)
    assert missing.verdict == "not measurable here" and "'gone'" in missing.reason and "a GPU" in missing.reason
    assert ordering(["fast", "mid", "slow"], metric="gather_s")(rows, ctx).verdict == "reproduced"
    assert ordering(["mid", "fast", "slow"], metric="gather_s")(rows, ctx).verdict == "not reproduced"
    assert Outcome("reproduced", 3.0).ratio(Published(1.5, "x", "hw", "src")) == 2.0
    assert Outcome("reproduced", None).ratio(Published(None, "ordering", "hw", "src")) is None


def test_studies_plan_unique_roles_and_label_their_rows() -> None:
    from accessbench.suite.studies.runner import plan_study

    for study in studies.all_studies().values():
        planned = plan_study(study, Context(quick=True, memory_cap=(True, "cgroup-v1")))
        assert planned and all(p.config.study == study.name for p in planned)
        assert len({p.config.key for p in planned}) == len(planned)


def test_pytorch_direct_on_a_cpu_says_not_measurable_per_claim(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "run", "pytorch-direct", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    study = studies.get("pytorch-direct")
    for claim in study.claims:
        assert f"{claim.id}: NOT MEASURABLE HERE" in out
    assert "needs a CUDA device" in out
    rows = schema.read_results(tmp_path / schema.RESULTS_FILE).rows
    assert rows and all(r["status"] == "skipped" and r["study"] == "pytorch-direct" for r in rows)
    claims = json.loads((tmp_path / "claims.json").read_text())["claims"]
    assert [c["verdict"] for c in claims] == ["not measurable here"] * len(study.claims)
    md = (tmp_path / "study.md").read_text()
    assert "## Claims: published vs measured" in md and "accessbench study run pytorch-direct --quick" in md


TINY_STUDY = textwrap.dedent('''
    import sys
    from pathlib import Path
    from accessbench.suite.measure.config import Config
    from accessbench.suite.studies.base import Claim, Context, Planned, Published, Study, faster
    from accessbench.suite.studies.runner import run_study
    from accessbench.workloads.config import Workload

    store = sys.argv[1]
    def plan(ctx):
        out = []
        for i in range(int(sys.argv[3])):
            wl = Workload(name=f"t{i}", store=store, mode="gather", steps=3, warmup_steps=1, gather_ids=256 + i)
            out.append(Planned(f"dr-{i}", Config("device-resident", wl, "gather", "cpu", {})))
        wl = Workload(name="t", store=store, mode="gather", steps=3, warmup_steps=1, gather_ids=256)
        out.append(Planned("ceiling", Config("ceiling:host-gather", wl, "gather", "cpu", {})))
        return out
    study = Study("tiny-test", "test", "a test study", plan, (Claim("c", "dr-0 vs the host-gather ceiling",
                  Published(1.0, "x", "any", "test"), faster("ceiling", "dr-0", metric="gather_s", at_least=0.0)),))
    judged = run_study(study, Context(), Path(sys.argv[2]), resume=len(sys.argv) > 4)
    print(judged[0].outcome.verdict)
''')


@pytest.mark.slow
def test_a_killed_study_resumes_without_loss_or_duplicates(tiny_store: Path, tmp_path: Path) -> None:
    script = tmp_path / "tiny_study.py"
    script.write_text(TINY_STUDY)
    out = tmp_path / "run"
    out.mkdir()
    n = 6
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_store), str(out), str(n)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = out / schema.RESULTS_FILE
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(schema.read_results(results).rows) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = schema.read_results(results).rows
    assert 1 <= len(before) < n + 1, "the kill should land mid-study"
    done = subprocess.run([sys.executable, str(script), str(tiny_store), str(out), str(n), "resume"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] in ("reproduced", "not reproduced")
    parsed = schema.read_results(results)
    keys = [r["config_key"] for r in parsed.rows]
    plan = json.loads((out / "study.json").read_text())
    assert sorted(keys) == sorted(plan["roles"].values())  # each configuration once, none lost
    assert all(r["status"] == "ok" and r["study"] == "tiny-test" for r in parsed.rows)
    assert [r["config_key"] for r in before] == keys[:len(before)]  # rows written before the kill are kept


def test_check_gpu_on_a_cpu_machine_needs_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--gpu", "--budget", "480"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["accessbench: error: check --gpu needs a CUDA device; torch sees none on this machine"]


def test_check_dry_run_lists_parts_within_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--gpu", "--budget", "480", "--dry-run"]) == 0
    out = capsys.readouterr().out
    names = [p.name for p in default_parts()]
    assert names[:2] == ["environment", "pytorch-direct"] and names[-1] == "out-of-core"
    for name in names:
        assert name in out
    assert sum(allowances(default_parts(), 480)) <= 480 - RESERVE_S + 1e-9


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_budget_with_parts_that_overrun_finish_early_or_fail(tmp_path: Path) -> None:
    clock = FakeClock()
    parts = [Part(f"p{i}", share, ("x",)) for i, share in enumerate([0.2, 0.2, 0.2, 0.2, 0.2])]
    budget = 210.0  # 200 s usable: 40 s per part
    behaviour = {"p0": 10.0, "p1": None, "p2": "fail", "p3": None, "p4": None}  # p1, p3, p4 overrun
    seen: list[tuple[str, float]] = []

    def runner(part: Part, out: Path, allowance: float) -> PartResult:
        seen.append((part.name, allowance))
        assert out.is_dir()
        how = behaviour[part.name]
        if how is None:  # an overrun: the real runner kills the part at its allowance
            clock.t += allowance
            return PartResult(part.name, "timed out", allowance, allowance, None, "killed")
        if how == "fail":
            clock.t += 5.0
            return PartResult(part.name, "failed", allowance, 5.0, 1, "boom")
        clock.t += how
        return PartResult(part.name, "ok", allowance, how, 0)

    snapshots: list[int] = []
    results = run_parts(parts, budget, tmp_path, runner=runner, clock=clock,
                        on_result=lambda rs: snapshots.append(len(rs)))
    assert seen[0] == ("p0", 40.0)
    assert seen[1] == ("p1", 70.0)  # its 40 s plus the 30 s p0 left
    assert seen[2] == ("p2", 40.0)
    assert seen[3] == ("p3", 75.0)  # p2 failed after 5 s: 35 s carried
    # p4: 200 - (10 + 70 + 5 + 75) = 40 s remain
    assert [r.status for r in results] == ["ok", "timed out", "failed", "timed out", "timed out"]
    assert clock.t <= budget and snapshots == [1, 2, 3, 4, 5]


def test_budget_skips_parts_for_time(tmp_path: Path) -> None:
    clock = FakeClock()
    parts = [Part("a", 0.5, ("x",)), Part("b", 0.3, ("x",)), Part("c", 0.2, ("x",))]

    def runner(part: Part, out: Path, allowance: float) -> PartResult:
        clock.t += 1e6 if part.name == "a" else 1.0  # a runaway part (the real runner kills it at its allowance)
        return PartResult(part.name, "timed out", allowance)

    results = run_parts(parts, 100.0, tmp_path, runner=runner, clock=clock)
    assert [r.status for r in results] == ["timed out", "skipped for time", "skipped for time"]
    assert all(r.allowance_s < MIN_PART_S for r in results[1:])


def test_real_part_runner_kills_at_the_allowance(tmp_path: Path) -> None:
    part = Part("sleepy", 1.0, (sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"))
    t0 = time.monotonic()
    results = run_parts([part], MIN_PART_S + RESERVE_S + 1, tmp_path)
    assert results[0].status == "timed out" and time.monotonic() - t0 < 40
    assert "started" in (tmp_path / "sleepy" / "part.log").read_text()


def test_pytorch_direct_grid_covers_the_published_one_and_quick_is_smaller() -> None:
    study = studies.get("pytorch-direct")
    full = study.plan(Context(quick=False, device="cuda:0"))
    quick = study.plan(Context(quick=True, device="cuda:0"))
    cells = {(p.config.workload.graph.feat_dim * (4 if p.config.workload.graph.dtype == "float32" else 2),
              p.config.workload.gather_ids, p.config.workload.graph.dtype)
             for p in full if p.role.startswith("gather-")}
    assert {rb for rb, _, _ in cells} == {4, 64, 512, 1024, 4096}
    assert {n for _, n, _ in cells} == {1_000, 10_000, 100_000, 1_000_000}
    assert {d for _, _, d in cells} == {"float32", "float16"}
    for p in full:
        g = p.config.workload.graph
        if p.config.mode == "gather":  # tables over twice any GPU's L2, so fresh random ids measure the link
            assert g.num_nodes * g.feat_dim * (4 if g.dtype == "float32" else 2) >= 256 << 20
    strategies = {p.config.strategy for p in full}
    assert {"zero-copy", "cpu-centric", "device-resident", "ceiling:pinned-memcpy", "ceiling:host-gather"} <= strategies
    assert {p.config.mode for p in full} == {"gather", "sample", "train"}
    assert len(quick) < len(full) and all(p.skip is None for p in full)
    assert all(p.skip and "CUDA" in p.skip for p in study.plan(Context(quick=True, device="cpu")))
