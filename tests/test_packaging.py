"""The distribution installs one import package, ``accessbench``, and no top-level layer names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("kernels", "workloads", "suite", "reports", "benchmarks", "tests")


@pytest.mark.slow
def test_wheel_holds_only_the_accessbench_package(tmp_path: Path) -> None:
    had_build = (ROOT / "build").exists()
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300, check=False)
    if not had_build:  # setuptools builds in the checkout: leave it as it was
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("accessbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"accessbench", next(t for t in tops if t.endswith(".dist-info"))}, sorted(tops)
    assert not any(n.split("/")[0] in LAYERS for n in names)
    for expected in ("accessbench/schema.py", "accessbench/kernels/base.py",
                     "accessbench/kernels/strategies/zero_copy/uva_gather.py",
                     "accessbench/suite/cli/entry.py", "accessbench/suite/measure/window.py",
                     "accessbench/workloads/presets/tiny.toml", "accessbench/suite/sim/hardware/pcie-gen5-host.toml",
                     "accessbench/reports/html.py"):
        assert expected in names, expected


def test_python_dash_m_accessbench_is_the_cli(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "accessbench", "list"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "cpu-centric" in proc.stdout and "zero-copy" in proc.stdout


def test_layers_import_under_one_name() -> None:
    import accessbench.kernels
    import accessbench.reports
    import accessbench.suite
    import accessbench.workloads

    for mod in (accessbench.kernels, accessbench.workloads, accessbench.suite, accessbench.reports):
        assert mod.__name__.startswith("accessbench.")
