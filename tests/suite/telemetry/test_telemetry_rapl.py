"""RAPL from a fake powercap tree: package and DRAM energy, wrap-around, permission denied, no RAPL at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from accessbench.suite.telemetry.meters import NullMeter
from accessbench.suite.telemetry.rapl import RaplMeter, RaplZone, discover_rapl

MAX = 262_143_328_850  # a real package max_energy_range_uj


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def set_energy(d: Path, value: int) -> None:
    (d / "energy_uj").write_text(f"{value}\n")


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "powercap"
    return {
        "root": root,
        "pkg0": zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "core0": zone(root, "intel-rapl:0:0", "core", 5),
        "dram0": zone(root, "intel-rapl:0:1", "dram", 2_000_000),
        "pkg1": zone(root, "intel-rapl:1", "package-1", 3_000_000),
        "mmio": zone(root, "intel-rapl-mmio:0", "package-0", 7),  # mirrors package 0: must not be counted
        "psys": zone(root, "intel-rapl:2", "psys", 0),
    }


def test_packages_and_dram_are_summed(tree: dict[str, Path]) -> None:
    meter = discover_rapl(tree["root"])
    assert isinstance(meter, RaplMeter)
    assert sorted(z.kind for z in meter.zones) == ["dram", "package", "package"]
    meter.start()
    set_energy(tree["pkg0"], 11_000_000)  # +10 J
    set_energy(tree["pkg1"], 8_000_000)  # +5 J
    set_energy(tree["dram0"], 2_500_000)  # +0.5 J
    set_energy(tree["mmio"], 99_000_000)
    fields, notes = meter.stop()
    assert fields == {"cpu_energy_j": pytest.approx(15.0), "cpu_dram_energy_j": pytest.approx(0.5)}
    assert notes == []


def test_wrap_around_is_added_back(tmp_path: Path) -> None:
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", MAX - 1_000_000)
    meter = discover_rapl(tmp_path)
    meter.start()
    set_energy(pkg, 4_000_000)  # wrapped: 1 J before the wrap, 4 J after
    fields, notes = meter.stop()
    assert fields["cpu_energy_j"] == pytest.approx(5.0)
    assert fields["cpu_dram_energy_j"] is None
    assert notes == ["cpu dram energy not measured: no RAPL dram zone on this machine"]


def test_polling_catches_several_wraps_in_a_long_window(tmp_path: Path) -> None:
    small = 10_000_000  # wraps every 10 J
    pkg = zone(tmp_path, "intel-rapl:0", "package-0", 0, max_uj=small)
    meter = RaplMeter([RaplZone("p", "package", pkg, small)], poll_interval_s=3600)
    meter.start()
    for value in (6_000_000, 2_000_000, 8_000_000, 1_000_000):  # +6, +6 (wrap), +6, +3 (wrap)
        set_energy(pkg, value)
        meter.poll()
    fields, _ = meter.stop()
    assert fields["cpu_energy_j"] == pytest.approx(21.0)


def test_permission_denied_gives_null_with_reason(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: RaplZone) -> int:
        raise PermissionError(13, "Permission denied", str(self.path / "energy_uj"))

    monkeypatch.setattr(RaplZone, "read_uj", denied)  # root reads any file: simulate the 0400 energy_uj
    meter = discover_rapl(tree["root"])
    assert isinstance(meter, NullMeter)
    fields, notes = meter.stop()
    assert fields == {"cpu_energy_j": None, "cpu_dram_energy_j": None}
    assert len(notes) == 1 and notes[0].startswith("cpu energy not measured: RAPL energy_uj")
    assert "root-only" in notes[0]


def test_no_powercap_and_no_package_zone(tmp_path: Path) -> None:
    meter = discover_rapl(tmp_path / "missing")
    assert isinstance(meter, NullMeter) and "no powercap interface" in meter.reason
    zone(tmp_path / "pc", "intel-rapl:0", "psys", 1)
    meter = discover_rapl(tmp_path / "pc")
    assert isinstance(meter, NullMeter) and "no RAPL package zone" in meter.reason


def test_read_error_mid_window_gives_null(tree: dict[str, Path]) -> None:
    meter = discover_rapl(tree["root"])
    meter.start()
    (tree["pkg1"] / "energy_uj").unlink()
    fields, notes = meter.stop()
    assert fields["cpu_energy_j"] is None
    assert notes and notes[0].startswith("cpu energy not measured: RAPL read failed")


def test_unreadable_at_the_start_of_a_window_gives_null(tree: dict[str, Path]) -> None:
    meter = discover_rapl(tree["root"])
    (tree["dram0"] / "energy_uj").unlink()
    meter.start()
    fields, notes = meter.stop()
    assert fields["cpu_energy_j"] is None and "RAPL read failed" in notes[0]
