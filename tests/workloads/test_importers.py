"""Importers: tiny OGB / IGB fixtures in their exact on-disk layouts, checked against a CSR built here independently."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accessbench.kernels.errors import InvalidOptions, StoreError
from accessbench.workloads.importers import import_dataset, import_igb, import_ogb, importer_options
from accessbench.workloads.importers._build import write_csr
from accessbench.workloads.store import MANIFEST, StoreWriter, open_store

SMALL_CHUNK = 1024  # bytes: forces many chunks (edges, feature rows, sort blocks) on the tiny fixtures


def reference_csr(src: np.ndarray, dst: np.ndarray, n: int, symmetrize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR by one global lexicographic sort (not the importer's counting sort); reverse edges skip self-loops."""
    s, d = torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(dst, dtype=torch.int64)
    if symmetrize:
        loop = s == d
        s, d = torch.cat([s, d[~loop]]), torch.cat([d, s[~loop]])
    order = torch.argsort(s * n + d, stable=True)
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(s, minlength=n), 0)
    return indptr, d[order]


def random_edges(n: int, e: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    src[:3] = dst[:3] = [5, 9, 9]  # self-loops, as some inputs have
    return src, dst


def write_gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        fh.write("".join(line + "\n" for line in lines))


def check_store(store: Path, *, indptr: torch.Tensor, indices: torch.Tensor, feats: torch.Tensor,
                labels: torch.Tensor | None, train: torch.Tensor | None) -> None:
    g = open_store(store, verify=True)
    assert torch.equal(g.indptr, indptr)
    assert g.indices.dtype == torch.int32
    assert torch.equal(g.indices.to(torch.int64), indices)
    assert g.features.dtype == feats.dtype and torch.equal(g.features, feats)
    if labels is None:
        assert g.labels is None and g.train_ids is None
    else:
        assert torch.equal(g.labels, labels)
        assert torch.equal(g.train_ids, train)


# --- ogbn-products layout (csv.gz) ----------------------------------------------------------------------------------

def make_products(root: Path, *, n: int = 120, d: int = 7, e: int = 500, split: bool = True) -> dict:
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((n, d)).astype(np.float32)
    labels = rng.integers(0, 5, n)
    src, dst = random_edges(n, e, 2)
    raw = root / "raw"
    write_gz(raw / "edge.csv.gz", [f"{a},{b}" for a, b in zip(src, dst, strict=True)])
    write_gz(raw / "node-feat.csv.gz", [",".join(f"{v:.9g}" for v in row) for row in feats])
    write_gz(raw / "node-label.csv.gz", [str(v) for v in labels])
    write_gz(raw / "num-node-list.csv.gz", [str(n)])
    train = np.sort(rng.choice(n, 30, replace=False))
    if split:
        write_gz(root / "split" / "sales_ranking" / "train.csv.gz", [str(v) for v in train])
    return {"n": n, "feats": feats, "labels": labels, "src": src, "dst": dst, "train": train}


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize("chunk_bytes", [SMALL_CHUNK, 1 << 20])
def test_products_csv(tmp_path: Path, symmetrize: bool, chunk_bytes: int) -> None:
    data = make_products(tmp_path / "ogbn_products")
    store = import_ogb(tmp_path / "ogbn_products", tmp_path / "store", symmetrize=symmetrize, chunk_bytes=chunk_bytes)
    indptr, indices = reference_csr(data["src"], data["dst"], data["n"], symmetrize)
    check_store(store, indptr=indptr, indices=indices, feats=torch.from_numpy(data["feats"]),
                labels=torch.from_numpy(data["labels"]), train=torch.from_numpy(data["train"]))
    m = json.loads((store / MANIFEST).read_text())
    assert m["name"] == "ogbn_products" and m["num_classes"] == int(data["labels"].max()) + 1
    src = m["source"]
    assert src["importer"] == "ogb" and src["layout"] == "csv"
    assert src["path"] == str((tmp_path / "ogbn_products").resolve())
    assert src["options"]["symmetrize"] is symmetrize and src["options"]["split"] == "sales_ranking"
    assert src["seconds"] >= 0 and "raw/edge.csv.gz" in src["files"]
    assert not list(store.glob(".*tmp"))  # the scratch array is gone


def test_products_dataset_root_and_labelled_train(tmp_path: Path) -> None:
    data = make_products(tmp_path / "datasets" / "ogbn_products", split=False)
    store = import_dataset("ogb", tmp_path / "datasets", tmp_path / "store", name="prod", chunk_bytes=SMALL_CHUNK)
    g = open_store(store)
    assert g.name == "prod"
    assert torch.equal(g.train_ids, torch.arange(data["n"]))  # no split file: every labelled node trains


# --- ogbn-papers100M layout (npz) -----------------------------------------------------------------------------------

def make_papers(root: Path, *, n: int = 150, d: int = 5, e: int = 400, compressed: bool = True,
                fortran: bool = False) -> dict:
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((n, d)).astype(np.float16)
    src, dst = random_edges(n, e, 4)
    edge_index = np.stack([src, dst])
    if fortran:
        edge_index = np.asfortranarray(edge_index)
    labels = rng.integers(0, 172, n).astype(np.float64)
    labels[rng.random(n) < 0.6] = np.nan
    labels[0] = 171.0
    raw = root / "raw"
    raw.mkdir(parents=True)
    save = np.savez_compressed if compressed else np.savez
    save(raw / "data.npz", edge_index=edge_index, node_feat=feats, node_year=rng.integers(1990, 2020, (n, 1)),
         num_nodes_list=np.array([n]), num_edges_list=np.array([e]))
    save(raw / "node-label.npz", node_label=labels.reshape(n, 1))
    return {"n": n, "feats": feats, "labels": labels, "src": src, "dst": dst}


@pytest.mark.parametrize(("compressed", "fortran", "symmetrize"),
                         [(True, False, True), (False, False, False), (False, True, True)])
def test_papers_npz_with_nan_labels(tmp_path: Path, compressed: bool, fortran: bool, symmetrize: bool) -> None:
    data = make_papers(tmp_path / "ogbn_papers100M", compressed=compressed, fortran=fortran)
    store = import_ogb(tmp_path / "ogbn_papers100M", tmp_path / "store", symmetrize=symmetrize, chunk_bytes=SMALL_CHUNK)
    labels = np.where(np.isnan(data["labels"]), -1, data["labels"]).astype(np.int64)
    indptr, indices = reference_csr(data["src"], data["dst"], data["n"], symmetrize)
    check_store(store, indptr=indptr, indices=indices, feats=torch.from_numpy(data["feats"]),
                labels=torch.from_numpy(labels), train=torch.from_numpy(np.flatnonzero(labels >= 0)))
    m = json.loads((store / MANIFEST).read_text())
    assert m["dtype"] == "float16" and m["num_classes"] == 172 and m["source"]["layout"] == "npz"


def test_papers_split_file_and_dtype_conversion(tmp_path: Path) -> None:
    root = tmp_path / "ogbn_papers100M"
    data = make_papers(root)
    write_gz(root / "split" / "time" / "train.csv.gz", ["3", "1", "4"])
    store = import_ogb(root, tmp_path / "store", feature_dtype="float32")
    g = open_store(store)
    assert torch.equal(g.train_ids, torch.tensor([1, 3, 4]))  # sorted, as the store format says
    assert torch.equal(g.features, torch.from_numpy(data["feats"]).to(torch.float32))


# --- IGB (.npy and headerless raw) ----------------------------------------------------------------------------------

def make_igb(base: Path, *, n: int = 100, d: int = 16, e: int = 300, raw: bool = False, labelled: int | None = None,
             dtype: type = np.float32) -> dict:
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((n, d)).astype(dtype)
    labels = rng.integers(0, 19, labelled or n).astype(np.float32)
    src, dst = random_edges(n, e, 6)
    paper, cites = base / "processed" / "paper", base / "processed" / "paper__cites__paper"
    paper.mkdir(parents=True)
    cites.mkdir(parents=True)
    arrays = {paper / "node_feat.npy": feats, paper / "node_label_19.npy": labels,
              cites / "edge_index.npy": np.stack([src, dst], axis=1).astype(np.int64)}
    for path, arr in arrays.items():
        arr.tofile(path) if raw else np.save(path, arr)
    return {"n": n, "feats": feats, "labels": labels, "src": src, "dst": dst, "feat_path": paper / "node_feat.npy"}


@pytest.mark.parametrize("symmetrize", [False, True])
def test_igb_npy(tmp_path: Path, symmetrize: bool) -> None:
    data = make_igb(tmp_path / "igb" / "tiny")
    store = import_igb(tmp_path / "igb", tmp_path / "store", symmetrize=symmetrize, chunk_bytes=SMALL_CHUNK)
    indptr, indices = reference_csr(data["src"], data["dst"], data["n"], symmetrize)
    labels = torch.from_numpy(data["labels"].astype(np.int64))
    check_store(store, indptr=indptr, indices=indices, feats=torch.from_numpy(data["feats"]), labels=labels,
                train=torch.arange(data["n"]))
    m = json.loads((store / MANIFEST).read_text())
    assert m["name"] == "igb-tiny" and m["source"]["size"] == "tiny"
    assert set(m["source"]["files"].values()) == {"npy"}


def test_igb_raw_memmaps(tmp_path: Path) -> None:
    data = make_igb(tmp_path / "full", raw=True, labelled=60, d=8, dtype=np.float16)
    store = import_dataset("igb", tmp_path / "full", tmp_path / "store", num_nodes=data["n"], feat_dim=8,
                           raw_feat_dtype="float16", chunk_bytes=SMALL_CHUNK)
    indptr, indices = reference_csr(data["src"], data["dst"], data["n"], False)
    labels = torch.full((data["n"],), -1, dtype=torch.int64)
    labels[:60] = torch.from_numpy(data["labels"].astype(np.int64))  # a labelled prefix, the rest padded
    check_store(store, indptr=indptr, indices=indices, feats=torch.from_numpy(data["feats"]), labels=labels,
                train=torch.arange(60))
    m = json.loads((store / MANIFEST).read_text())
    assert set(m["source"]["files"].values()) == {"raw"} and m["source"]["options"]["num_nodes"] == data["n"]


def test_igb_raw_needs_a_consistent_shape(tmp_path: Path) -> None:
    data = make_igb(tmp_path / "igb", raw=True)
    with pytest.raises(StoreError, match="pass num_nodes"):
        import_igb(tmp_path / "igb", tmp_path / "s1", feat_dim=16)
    with pytest.raises(StoreError, match=r"must be a whole number .* wrong"):  # 'tiny' means 100000 nodes
        import_igb(tmp_path / "igb", tmp_path / "s2", size="tiny", feat_dim=16)
    path = data["feat_path"]
    path.write_bytes(path.read_bytes()[:-6])  # truncated mid-row
    with pytest.raises(StoreError, match="truncated") as err:
        import_igb(tmp_path / "igb", tmp_path / "s3", num_nodes=data["n"], feat_dim=16)
    assert str(path) in str(err.value) and "6394 bytes" in str(err.value)
    assert not (tmp_path / "s3").exists()  # the inputs are checked before a store is started


# --- errors ---------------------------------------------------------------------------------------------------------

def test_missing_files_name_the_path(tmp_path: Path) -> None:
    make_products(tmp_path / "p")
    (tmp_path / "p" / "raw" / "node-feat.csv.gz").unlink()
    with pytest.raises(StoreError, match=r"node-feat\.csv\.gz is missing \(expected one comma-separated"):
        import_ogb(tmp_path / "p", tmp_path / "s")
    with pytest.raises(StoreError, match="no OGB dataset here"):
        import_ogb(tmp_path / "p" / "split", tmp_path / "s")
    make_igb(tmp_path / "i")
    with pytest.raises(StoreError, match=r"node_label_2K\.npy is missing"):
        import_igb(tmp_path / "i", tmp_path / "s", label_set="2K")
    (tmp_path / "i" / "processed" / "paper__cites__paper" / "edge_index.npy").unlink()
    with pytest.raises(StoreError, match=r"edge_index\.npy is missing \(expected the citation edges"):
        import_igb(tmp_path / "i", tmp_path / "s")
    with pytest.raises(StoreError, match="no such directory"):
        import_igb(tmp_path / "nowhere", tmp_path / "s")


def test_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_papers(root)
    with pytest.raises(StoreError, match="more labels than the 4 nodes"):
        np.savez(root / "raw" / "data.npz", edge_index=np.zeros((2, 0), np.int64),
                 node_feat=np.ones((4, 2), np.float32))
        import_ogb(root, tmp_path / "s0")
    (root / "raw" / "node-label.npz").unlink()
    np.savez(root / "raw" / "data.npz", edge_index=np.array([[0, 1], [1, 999]]), node_feat=np.ones((4, 2), np.float32))
    with pytest.raises(StoreError, match=r"node id 999 is outside \[0, 4\)"):
        import_ogb(root, tmp_path / "s1")
    np.savez(root / "raw" / "data.npz", edges=np.zeros((2, 2)))
    with pytest.raises(StoreError, match="no array 'node_feat'.*it holds edges"):
        import_ogb(root, tmp_path / "s2")
    make_products(tmp_path / "q")
    edge = tmp_path / "q" / "raw" / "edge.csv.gz"
    edge.write_bytes(edge.read_bytes()[:-40])
    with pytest.raises(StoreError, match=r"cannot read .*edge\.csv\.gz"):
        import_ogb(tmp_path / "q", tmp_path / "s3")
    assert not (tmp_path / "s3" / MANIFEST).exists()


def test_split_choice(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_products(root)
    write_gz(root / "split" / "other" / "train.csv.gz", ["0"])
    with pytest.raises(InvalidOptions, match="several split schemes.*other, sales_ranking"):
        import_ogb(root, tmp_path / "s")
    assert torch.equal(open_store(import_ogb(root, tmp_path / "s", split="other")).train_ids, torch.tensor([0]))
    with pytest.raises(StoreError, match="no such split scheme"):
        import_ogb(root, tmp_path / "s2", split="random")


def test_dispatcher_and_overwrite(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptions, match="unknown dataset kind 'mag'; valid: ogb, igb"):
        import_dataset("mag", tmp_path, tmp_path / "s")
    with pytest.raises(InvalidOptions, match="no option sym.*valid: .*symmetrize"):
        import_dataset("ogb", tmp_path, tmp_path / "s", sym=True)
    with pytest.raises(InvalidOptions, match="feature_dtype"):
        import_dataset("igb", tmp_path, tmp_path / "s", feature_dtype="float64")
    assert importer_options("ogb")["symmetrize"] is True and importer_options("igb")["symmetrize"] is False
    make_products(tmp_path / "p")
    import_ogb(tmp_path / "p", tmp_path / "s")
    with pytest.raises(StoreError, match="already exists"):
        import_ogb(tmp_path / "p", tmp_path / "s")
    assert open_store(import_ogb(tmp_path / "p", tmp_path / "s", overwrite=True, symmetrize=False)).num_edges == 500


@pytest.mark.parametrize("seed", range(4))
def test_counting_sort_matches_global_sort(tmp_path: Path, seed: int) -> None:
    """The CSR builder on its own: skewed degrees, empty nodes, varied chunk sizes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    e = int(rng.integers(0, 3000))
    src = (rng.pareto(1.5, e) * 3).astype(np.int64) % n
    dst = rng.integers(0, n, e)
    chunk = int(rng.integers(1, 200))
    sym = bool(seed % 2)

    def edges():
        for lo in range(0, e, chunk):
            yield src[lo:lo + chunk], dst[lo:lo + chunk]

    with StoreWriter(tmp_path / "s") as out:
        out.append("features", torch.zeros(n, 1))
        write_csr(out, edges, n, symmetrize=sym, what="test", chunk_bytes=int(rng.integers(1024, 4096)))
        out.finish(name="t")
    g = open_store(tmp_path / "s")
    indptr, indices = reference_csr(src, dst, n, sym)
    assert torch.equal(g.indptr, indptr) and torch.equal(g.indices.to(torch.int64), indices)


def test_scatter_paths_agree() -> None:
    """The packed-key path (int32 ids) and the argsort path (int64 ids, graphs over 2**31 nodes) fill alike."""
    from accessbench.workloads.importers._build import _scatter

    rng = np.random.default_rng(9)
    src, dst = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=50))])
    filled = []
    for dtype in (np.int32, np.int64):
        target, cursor = np.full(400, -1, dtype=dtype), indptr[:-1].copy()
        _scatter(target, cursor, src[:150], dst[:150])
        _scatter(target, cursor, src[150:], dst[150:])
        assert np.array_equal(cursor, indptr[1:])
        filled.append(np.concatenate([np.sort(target[a:b]) for a, b in zip(indptr[:-1], indptr[1:], strict=True)]))
    _, expected = reference_csr(src, dst, 50, False)
    assert np.array_equal(filled[0], expected.numpy()) and np.array_equal(filled[1], expected.numpy())


def test_graph_without_edges_or_labels(tmp_path: Path) -> None:
    raw = tmp_path / "ogbn_x" / "raw"
    raw.mkdir(parents=True)
    np.savez(raw / "data.npz", edge_index=np.zeros((2, 0), np.int64), node_feat=np.ones((3, 2), np.float32))
    with pytest.raises(StoreError, match="holds no edges; pass allow_empty_edges=True"):
        import_ogb(tmp_path / "ogbn_x", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # nothing half-written is left
    store = import_ogb(tmp_path / "ogbn_x", tmp_path / "s", allow_empty_edges=True)
    assert json.loads((store / MANIFEST).read_text())["source"]["options"]["allow_empty_edges"] is True
    g = open_store(store)
    assert g.num_edges == 0 and torch.equal(g.indptr, torch.zeros(4, dtype=torch.int64))
    assert g.labels is None and g.train_ids is None and g.num_classes is None
