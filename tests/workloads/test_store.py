"""The on-disk store: round trip, determinism, and refusal of truncated, mismatched or corrupt stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from accessbench.kernels.errors import StoreError
from accessbench.workloads.generate import GraphSpec, generate
from accessbench.workloads.store import StoreWriter, open_store, read_manifest, verify_store


def _write(path: Path, *, dtype: torch.dtype = torch.float32, n: int = 50, d: int = 7) -> dict:
    g = torch.Generator().manual_seed(0)
    deg = torch.randint(0, 6, (n,), generator=g)
    indptr = torch.cat([torch.zeros(1, dtype=torch.int64), deg.cumsum(0)])
    indices = torch.randint(0, n, (int(indptr[-1]),), generator=g, dtype=torch.int32)
    feats = torch.randn(n, d, generator=g).to(dtype)
    with StoreWriter(path) as w:
        w.append("indptr", indptr[:20])  # in chunks, as the generator does
        w.append("indptr", indptr[20:])
        w.append("indices", indices)
        w.append("features", feats[:13])
        w.append("features", feats[13:])
        w.append("labels", torch.arange(n))
        w.append("train_ids", torch.arange(0, n, 2))
        w.finish(name="hand", num_classes=n)
    return {"indptr": indptr, "indices": indices, "features": feats}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip(tmp_path: Path, dtype: torch.dtype) -> None:
    ref = _write(tmp_path / "s", dtype=dtype)
    g = open_store(tmp_path / "s", verify=True)
    assert torch.equal(g.indptr, ref["indptr"]) and torch.equal(g.indices, ref["indices"])
    assert g.features.dtype == dtype and torch.equal(g.features, ref["features"])
    assert g.feature_file is not None and g.feature_file.row_bytes == g.row_bytes
    raw = g.feature_file.path.read_bytes()
    row = 11
    start = g.feature_file.offset + row * g.feature_file.row_stride
    assert raw[start:start + g.row_bytes] == ref["features"][row].contiguous().view(torch.uint8).numpy().tobytes()
    assert g.train_ids.tolist() == list(range(0, 50, 2)) and g.num_classes == 50


def test_generator_is_deterministic(tmp_path: Path) -> None:
    spec = GraphSpec(num_nodes=3000, avg_degree=6, feat_dim=5, seed=3)
    a, b = generate(spec, tmp_path / "a"), generate(spec, tmp_path / "b")
    ma, mb = read_manifest(a), read_manifest(b)
    for name in ma["arrays"]:
        assert ma["arrays"][name]["blake2b"] == mb["arrays"][name]["blake2b"]
    c = generate(GraphSpec(num_nodes=3000, avg_degree=6, feat_dim=5, seed=4), tmp_path / "c")
    assert read_manifest(c)["arrays"]["indices"]["blake2b"] != ma["arrays"]["indices"]["blake2b"]


def test_generated_graph_is_power_law_and_valid(tmp_path: Path) -> None:
    spec = GraphSpec(num_nodes=70_000, avg_degree=10, feat_dim=4, dtype="float16", seed=1)
    g = open_store(generate(spec, tmp_path / "g"), verify=True)  # spans two generator chunks
    assert g.num_nodes == 70_000 and g.features.dtype == torch.float16
    assert abs(g.num_edges / g.num_nodes - 10) < 0.5
    indeg = torch.bincount(g.indices.long(), minlength=g.num_nodes).sort(descending=True).values
    top = indeg[: g.num_nodes // 5].sum() / indeg.sum()
    assert top > 0.6  # skewed: a fifth of the nodes receive most edges
    assert int(g.degrees().max()) <= 10 * (70_000 * 10) ** 0.5  # structural cut-off holds (Poisson slack)
    rows = g.indptr
    for v in (0, 123, 69_999):  # neighbour lists sorted
        nb = g.indices[rows[v]:rows[v + 1]]
        assert torch.equal(nb, nb.sort().values)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    _write(tmp_path / "s")
    return tmp_path / "s"


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no graph store"):
        open_store(tmp_path / "absent")


def test_missing_manifest(store: Path) -> None:
    (store / "manifest.json").unlink()
    with pytest.raises(StoreError, match="manifest.json is missing"):
        open_store(store)


def test_malformed_manifest(store: Path) -> None:
    (store / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable manifest"):
        open_store(store)


def test_truncated_array(store: Path) -> None:
    f = store / "features.bin"
    f.write_bytes(f.read_bytes()[:-4])
    with pytest.raises(StoreError, match="features.bin is truncated"):
        open_store(store)


def test_missing_array(store: Path) -> None:
    (store / "indices.bin").unlink()
    with pytest.raises(StoreError, match="indices.bin .* is missing"):
        open_store(store)


def test_corrupt_array(store: Path) -> None:
    f = store / "features.bin"
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        open_store(store)


def test_manifest_counts_mismatch(store: Path) -> None:
    m = json.loads((store / "manifest.json").read_text())
    m["num_nodes"] += 1
    (store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="shape"):
        open_store(store)


def test_wrong_schema_version(store: Path) -> None:
    m = json.loads((store / "manifest.json").read_text())
    m["schema_version"] = 99
    (store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(store)


def test_invalid_csr_is_refused(tmp_path: Path) -> None:
    with StoreWriter(tmp_path / "bad") as w:
        w.append("indptr", torch.tensor([0, 3, 2], dtype=torch.int64))
        w.append("indices", torch.tensor([0, 1], dtype=torch.int32))
        w.append("features", torch.zeros(2, 3))
        w.finish(name="bad")
    with pytest.raises(StoreError, match="indptr"):
        open_store(tmp_path / "bad")


def test_out_of_range_indices_refused(tmp_path: Path) -> None:
    with StoreWriter(tmp_path / "bad") as w:
        w.append("indptr", torch.tensor([0, 1, 2], dtype=torch.int64))
        w.append("indices", torch.tensor([0, 5], dtype=torch.int32))
        w.append("features", torch.zeros(2, 3))
        w.finish(name="bad")
    with pytest.raises(StoreError, match="outside"):
        open_store(tmp_path / "bad")


def test_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), StoreWriter(tmp_path / "half") as w:
        w.append("indptr", torch.zeros(1, dtype=torch.int64))
        raise RuntimeError("interrupted")
    assert not (tmp_path / "half").exists()  # the writer made the directory, so it removes it
    with pytest.raises(StoreError, match="not a directory"):
        open_store(tmp_path / "half")


def test_writer_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        StoreWriter(tmp_path / "d")
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"


def test_verify_store_catches_corruption_beyond_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import accessbench.workloads.store as st

    path = generate(GraphSpec(num_nodes=600, avg_degree=4, feat_dim=8), tmp_path / "v")
    monkeypatch.setattr(st, "_SAMPLE_COUNT", 2)
    monkeypatch.setattr(st, "_SAMPLE_CHUNK", 64)
    m = read_manifest(path)
    for spec in m["arrays"].values():
        spec["blake2b_sampled"] = st._sampled_digest(path / spec["file"], spec["bytes"])
    (path / "manifest.json").write_text(json.dumps(m))
    f = path / "features.bin"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 1  # between the sampled chunks
    f.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        open_store(path)  # first use: the full digest
    with pytest.raises(StoreError, match="corrupt"):
        verify_store(path)
    shutil.rmtree(path)
