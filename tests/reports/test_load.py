"""Loading run directories: torn lines, malformed lines, nulls, missing columns, power traces, probe files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from accessbench.reports.ceilings import ceilings_frame, machine_stamp, relevant_ceiling
from accessbench.reports.load import NUMERIC_COLUMNS, ReportError, load_run, records_frame
from tests.reports.runs import PROBE, record, write_run


def test_torn_last_line_is_skipped_with_a_note(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path, [record("cpu-centric"), record("device-resident")],
                             torn='{"strategy": "zero-co'))
    assert list(run.results["strategy"]) == ["cpu-centric", "device-resident"]
    assert any("incomplete" in n for n in run.notes)


def test_malformed_middle_line_and_non_objects_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").write_text(
        json.dumps(record("cpu-centric")) + "\nnot json\n[1, 2]\n\n" + json.dumps(record("device-resident")) + "\n")
    run = load_run(tmp_path)
    assert len(run.results) == 2
    assert any("line 2 is not valid JSON" in n for n in run.notes)
    assert any("line 3 is not a JSON object" in n for n in run.notes)


def test_missing_fields_become_nan_and_status_defaults_to_ok() -> None:
    df = records_frame([{"strategy": "cpu-centric", "workload": "tiny", "step_s": "0.5", "gpu_energy_j": None}])
    for col in NUMERIC_COLUMNS:
        assert col in df
    assert df.loc[0, "step_s"] == 0.5
    assert math.isnan(df.loc[0, "gpu_energy_j"]) and math.isnan(df.loc[0, "hit_rate"])
    assert df.loc[0, "status"] == "ok"
    assert df.loc[0, "config_key"]  # synthesised from the identity fields


def test_options_supply_cache_and_row_fields_and_label() -> None:
    df = records_frame([record("cached", options={"cache_fraction": 0.2, "policy": "degree"}),
                        record("cpu-centric", mode="gather", row_bytes=512)])
    assert df.loc[0, "cache_fraction"] == 0.2
    assert df.loc[0, "label"] == "cached [cache_fraction=0.2,policy=degree]"
    assert df.loc[1, "row_bytes"] == 512


def test_repeated_config_key_keeps_the_last_record() -> None:
    first = record("cpu-centric", status="failed", error="killed")
    retry = record("cpu-centric", step_s=0.02)
    df = records_frame([first, retry])
    assert len(df) == 1 and df.loc[0, "status"] == "ok" and df.loc[0, "step_s"] == 0.02


def test_label_clashes_are_disambiguated() -> None:
    a = record("cpu-centric", config_key="k1aaaaaaa")
    b = record("cpu-centric", config_key="k2bbbbbbb")
    labels = records_frame([a, b])["label"].tolist()
    assert len(set(labels)) == 2 and all(lab.startswith("cpu-centric #") for lab in labels)


def test_power_traces_are_read_and_bad_ones_skipped(tmp_path: Path) -> None:
    write_run(tmp_path, [record("cpu-centric")], power={
        "good": "t_s,power_w,gpu\n0,100,0\n0.5,120,0\n0.5,90,1\n1.0,x,0\n",
        "nogpu": "t_s,power_w\n0,50\n",
        "wrong": "time,watts\n0,1\n",
    })
    run = load_run(tmp_path)
    assert sorted(run.power["trace"].unique()) == ["good", "nogpu"]
    good = run.power[run.power["trace"] == "good"]
    assert len(good) == 3 and sorted(good["gpu"].unique()) == [0, 1]
    assert any("power_wrong.csv" in n for n in run.notes)


def test_probe_missing_or_broken_is_a_note(tmp_path: Path) -> None:
    write_run(tmp_path, [record("cpu-centric")])
    assert load_run(tmp_path).probe == {}
    (tmp_path / "probe.json").write_text("{broken")
    run = load_run(tmp_path)
    assert run.probe == {} and any("probe.json" in n for n in run.notes)


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no results.jsonl"):
        load_run(tmp_path)
    with pytest.raises(ReportError, match="does not exist"):
        load_run(tmp_path / "missing")


def test_empty_results_file_gives_an_empty_frame(tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").write_text("")
    run = load_run(tmp_path)
    assert run.results.empty and any("no complete records" in n for n in run.notes)


def test_ceilings_frame_and_relevant_ceiling() -> None:
    frame = ceilings_frame(PROBE)
    assert list(frame["key"]) == ["host_copy_gbps", "host_gather_gbps", "h2d_pinned_gbps", "disk_iops_qd1"]
    h2d = frame[frame["key"] == "h2d_pinned_gbps"].iloc[0]
    assert math.isnan(h2d["value"]) and h2d["reason"] == "no CUDA device"
    assert relevant_ceiling({"device": "cpu", "strategy": "zero-copy"}) == "host_gather_gbps"
    assert relevant_ceiling({"device": "cuda:0", "strategy": "zero-copy"}) == "h2d_pinned_gbps"
    assert relevant_ceiling({"device": "cuda:0", "strategy": "out-of-core"}) == "disk_seq_gbps"
    assert relevant_ceiling({"device": "cuda:0", "strategy": "cached"}) == "device_gather_gbps"
    assert relevant_ceiling({"device": "cuda:0", "strategy": "mine", "bytes_h2d": 5}) == "h2d_pinned_gbps"


def test_machine_stamp_merges_records_and_probe() -> None:
    a = record("cpu-centric")
    b = record("device-resident", env={**a["env"], "time": "2026-01-02T00:00:00", "torch": "2.14"})
    stamp = machine_stamp(records_frame([a, b]), PROBE)
    assert stamp["hostname"] == "testhost"
    assert stamp["torch"] == "2.13 | 2.14"
    assert stamp["time"] == "2026-01-01T00:00:00 .. 2026-01-02T00:00:00"
    assert stamp["cpu"] == "test cpu"
