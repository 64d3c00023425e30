"""The runner's command-line flags: isolation off, timeouts, telemetry switches, profiling, plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accessbench.suite.cli import main
from accessbench.suite.measure.records import RESULTS_FILE, read_records
from accessbench.suite.runner.plugins import PluginError, load_plugins, loaded_plugins, plugin_env

TINY_GATHER = ["-w", "tiny", "-m", "gather", "--device", "cpu", "--steps", "2", "--warmup", "1", "--gather-ids",
               "256", "--no-report"]


def test_no_isolate_profile_and_telemetry_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["run", *TINY_GATHER, "-s", "cpu-centric,device-resident", "--out", str(out), "--no-isolate",
               "--no-nvtx", "--power-interval", "0.05", "--min-energy-window", "0", "--idle-baseline",
               "--profile", "device-resident"])
    assert rc == 0, capsys.readouterr().err
    rows, bad = read_records(out / RESULTS_FILE)
    assert bad == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    by = {r["strategy"]: r for r in rows}
    assert by["cpu-centric"]["profile_trace"] is None
    trace = by["device-resident"]["profile_trace"]
    assert trace and json.loads((out / trace).read_text())["traceEvents"]
    for r in rows:
        assert r["worker_exit_code"] is None  # ran in this process
        assert r["gpu_idle_power_w"] is None  # no GPU
        if r["cpu_energy_j"] is None:  # no readable RAPL either: nothing to compare an idle window with
            assert r["idle_window_s"] is None
            assert "idle baseline skipped: no energy was measured to compare it with" in r["notes"]
        else:
            assert r["idle_window_s"] > 0 and r["cpu_idle_power_w"] is not None
    assert not (out / "logs").exists() and not (out / ".work").exists()


def test_bad_flag_values_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run", *TINY_GATHER, "--out", str(tmp_path / "r")]
    for extra, message in ((["--timeout", "-1"], "--timeout must be >= 0"),
                           (["--power-interval", "-0.1"], "power sample interval must be >= 0"),
                           (["--profile", "cpu-centric", "-s", "device-resident"], "--profile names strategy"),
                           (["--plugins", "no_such_plugin_module_xyz"],
                            "plugin module 'no_such_plugin_module_xyz' not found")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_plugins_from_files_and_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "harmless_plugin.py"
    good.write_text("LOADED = True\n")
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise RuntimeError('nope')\n")
    names = load_plugins([str(good)])
    assert len(names) == 1 and names[0].startswith("accessbench_plugin_harmless_plugin_")
    assert load_plugins([str(good)]) == names  # imported once
    assert str(good.resolve()) in loaded_plugins() and str(good.resolve()) in plugin_env()
    with pytest.raises(PluginError, match="broken_plugin.py failed to import: RuntimeError: nope"):
        load_plugins([str(broken)])
    with pytest.raises(PluginError, match="does not exist"):
        load_plugins([str(tmp_path / "missing.py")])
    monkeypatch.setenv("ACCESSBENCH_PLUGINS", f" {good} ,")
    assert load_plugins() == names
