"""Every script in examples/ runs as a user would run it: exit 0 with its ``exact:`` line, or (zero-copy where it
cannot run) exit 2 with the registry's reason on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from accessbench.kernels import registry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: script -> the strategy it shows
SCRIPTS = {"cpu_centric": "cpu-centric", "device_resident": "device-resident", "zero_copy": "zero-copy",
           "out_of_core": "out-of-core", "cached": "cached"}


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=240, check=False)


def test_every_strategy_has_an_example_listed_in_the_readme() -> None:
    assert sorted(SCRIPTS.values()) == registry.names()
    assert sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")) == sorted(SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text()
    for name, strategy in SCRIPTS.items():
        assert f"({name}.py)" in readme and f"`{strategy}`" in readme


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n != "zero_copy"])
def test_example_runs_exact_on_the_cpu(name: str) -> None:
    proc = run_example(name, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "exact: gather of 1024 ids on cpu equals features[ids]" in lines
    assert any(line.startswith("gather 1024 rows x 256 B: median ") and "p10" in line and "p90" in line
               for line in lines), proc.stdout


def test_zero_copy_example_runs_or_says_why() -> None:
    ok, reason = registry.get("zero-copy").availability()
    if not torch.cuda.is_available():
        assert not ok  # no CUDA: zero-copy cannot run here
    proc = run_example("zero_copy", "--device", "cuda" if torch.cuda.is_available() else "cpu")
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert any(line.startswith("exact: gather of 1024 ids on cuda") for line in proc.stdout.splitlines())
    else:
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == f"zero-copy is unavailable here: {reason}\n"


def test_an_absent_device_is_one_line_and_exit_2() -> None:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device = f"cuda:{count}" if count else "cuda"  # one past the last device, or any where there is none
    proc = run_example("cpu_centric", "--device", device)
    assert proc.returncode == 2 and proc.stdout == ""
    want = (f"device {device!r} requested but only {count} CUDA device(s)" if count
            else f"device {device!r} requested but torch sees no CUDA device on this machine")
    assert proc.stderr == want + "\n"
