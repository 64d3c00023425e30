"""The record layout: one schema, the Record built from it, the doc table, and the fields a `tiny` run writes.

``tiny_fields_before_layout.json`` holds the field set and statuses of `accessbench run -w tiny --device cpu`
measured on the commit before the layout change; the same run must write the same fields and statuses.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from accessbench import schema
from accessbench.suite.cli import main
from accessbench.suite.measure.rank_merge import PER_RANK_FIELDS, RULES
from accessbench.suite.measure.records import Record, read_records
from accessbench.suite.telemetry.meters import GPU_FIELDS

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def test_record_is_built_from_the_schema() -> None:
    assert [f.name for f in dataclasses.fields(Record)] == list(schema.FIELD_NAMES)
    fresh = Record()
    for f in schema.FIELDS:
        assert getattr(fresh, f.name) == f.default, f.name
    assert len(set(schema.FIELD_NAMES)) == len(schema.FIELD_NAMES)


def test_every_field_is_fully_declared() -> None:
    for f in schema.FIELDS:
        assert f.merge in schema.MERGE_RULES, f.name
        assert f.type in ("int", "float", "str", "bool", "list", "dict"), f.name
        assert f.doc and f.group, f.name
        if (f.name.endswith("_s") or "_s_p" in f.name) and "_per_s" not in f.name:
            assert f.unit == "s", f.name
        if f.name.endswith("_j"):
            assert f.unit == "J", f.name
        if f.name.startswith("bytes_") or f.name.endswith("_bytes"):
            assert f.unit == "bytes", f.name


def test_derived_tables_follow_the_schema() -> None:
    assert RULES == {f.name: f.merge for f in schema.FIELDS}
    assert set(PER_RANK_FIELDS) == {f.name for f in schema.FIELDS if f.per_rank}
    assert set(GPU_FIELDS) == {f.name for f in schema.FIELDS if f.group == "gpu"}
    assert all(f"{p}_s" in schema.FIELD_NAMES for p in schema.PHASES)


def test_results_doc_table_matches_the_schema() -> None:
    doc = (ROOT / "docs" / "RESULTS.md").read_text()
    assert schema.field_table_markdown() in doc, "regenerate the table: python -m accessbench.schema"
    documented = re.findall(r"^\| `(\w+)` \|", doc, flags=re.M)
    assert sorted(documented) == sorted(schema.FIELD_NAMES)


def test_reader_sorts_unusable_lines_by_why(tmp_path: Path) -> None:
    path = tmp_path / schema.RESULTS_FILE
    path.write_text('{"strategy": "a"}\nnot json\n[1]\n{"schema_version": 99}\n{"strategy": "b"}\n{"torn":')
    parsed = schema.read_results(path)
    assert [r["strategy"] for r in parsed.rows] == ["a", "b"]
    assert parsed.bad_lines == [2, 6] and parsed.not_objects == [3] and parsed.newer == [4] and parsed.bad == 4
    assert schema.upgrade_row({"strategy": "a"})["gpu_energy_j"] is None


def test_tiny_run_writes_the_same_fields_and_statuses_as_before_the_layout(tmp_path: Path) -> None:
    before = json.loads((HERE / "tiny_fields_before_layout.json").read_text())
    added_since = ["ceiling_fraction", "ceiling_gbps", "ceiling_key", "contended", "cpu_affinity", "cpu_others_cores",
                   "cpu_threads", "memory_cap_bytes", "memory_cap_method", "process_medians", "processes",
                   "sample_runs", "sampler", "samples", "study"]  # new fields, declared in the schema after the layout
    out = tmp_path / "run"
    assert main(["run", "-w", "tiny", "--device", "cpu", "--out", str(out), "--no-report", "--no-probe",
                 "--steps", "2", "--warmup", "1"]) == 0
    rows, bad = read_records(out / schema.RESULTS_FILE)
    assert bad == 0
    assert {r["strategy"]: r["status"] for r in rows} == before["statuses"]
    for row in rows:
        assert sorted(row) == sorted(before["fields"] + added_since), row["strategy"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(len(r["samples"]["step"]) == r["measured_steps"] for r in ok)
