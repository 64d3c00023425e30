"""Importers refuse what would make a silently wrong store: NaN/inf features, ragged csv rows, fractional or NaN
ids, empty edge lists, edge counts that disagree; and read ogb 1.3.6's DatasetSaver layout (split_dict.pt)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accessbench.kernels.errors import StoreError
from accessbench.suite.cli import main
from accessbench.workloads.importers import import_ogb
from accessbench.workloads.store import MANIFEST, open_store, read_manifest


def _npz(root: Path, *, feats: np.ndarray | None = None, edges: np.ndarray | None = None, **extra: np.ndarray) -> Path:
    raw = root / "ogbn_t" / "raw"
    raw.mkdir(parents=True)
    feats = np.arange(12, dtype=np.float32).reshape(4, 3) if feats is None else feats
    edges = np.array([[0, 1, 2], [1, 2, 3]], dtype=np.int64) if edges is None else edges
    np.savez(raw / "data.npz", node_feat=feats, edge_index=edges, **extra)
    return root / "ogbn_t"


def _csv(root: Path, feat_lines: list[str], edge_lines: list[str] | None = None) -> Path:
    raw = root / "ogbn_c" / "raw"
    raw.mkdir(parents=True)
    for name, lines in (("node-feat", feat_lines), ("edge", edge_lines or ["0,1", "1,2"])):
        with gzip.open(raw / f"{name}.csv.gz", "wt") as fh:
            fh.write("".join(f"{line}\n" for line in lines))
    return root / "ogbn_c"


def test_nonfinite_features_refused_unless_allowed(tmp_path: Path) -> None:
    feats = np.ones((6, 3), np.float32)
    feats[4, 2], feats[5, 0] = np.nan, np.inf
    src = _npz(tmp_path, feats=feats, edges=np.array([[0, 1], [1, 2]]))
    with pytest.raises(StoreError, match="2 non-finite feature values .*first at row 4, column 2; pass allow_nonfinite"):
        import_ogb(src, tmp_path / "s", chunk_bytes=1024)
    assert not (tmp_path / "s").exists()
    store = import_ogb(src, tmp_path / "s", allow_nonfinite=True)
    assert read_manifest(store)["nonfinite"] is True
    assert torch.isnan(open_store(store).features[4, 2])


def test_csv_feature_rows_must_have_the_first_rows_width(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="fewer fields than the first row's 3"):
        import_ogb(_csv(tmp_path / "a", ["1,2,3", "4,5", "6,7,8"]), tmp_path / "s")
    with pytest.raises(StoreError, match="more fields than the first row's 3"):
        import_ogb(_csv(tmp_path / "b", ["1,2,3", "4,5,6,7", "6,7,8"]), tmp_path / "s")
    with pytest.raises(StoreError, match="fewer fields"):
        import_ogb(_csv(tmp_path / "c", ["1,2,3", "4,,6", "6,7,8"]), tmp_path / "s")  # an empty field


def test_csv_nan_edge_id_is_named_nan(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="holds NaN where an integer is expected"):
        import_ogb(_csv(tmp_path, ["1,2", "3,4", "5,6"], ["0,1", "nan,2"]), tmp_path / "s")


def test_float_edges_only_when_whole(tmp_path: Path) -> None:
    store = import_ogb(_npz(tmp_path / "a", edges=np.array([[0.0, 1.0], [1.0, 3.0]])), tmp_path / "ok")
    assert open_store(store).num_edges == 4
    with pytest.raises(StoreError, match=r"node id 1\.5 is not a whole number"):
        import_ogb(_npz(tmp_path / "b", edges=np.array([[0.0, 1.5], [1.0, 3.0]])), tmp_path / "s")
    with pytest.raises(StoreError, match="holds 1 NaN node ids"):
        import_ogb(_npz(tmp_path / "c", edges=np.array([[0.0, np.nan], [1.0, 3.0]])), tmp_path / "s")


def test_num_edges_list_checked(tmp_path: Path) -> None:
    src = _npz(tmp_path, num_edges_list=np.array([5]), num_nodes_list=np.array([4]))
    with pytest.raises(StoreError, match="num_edges_list says 5 edges but edge_index has 3"):
        import_ogb(src, tmp_path / "s")


def test_dataset_saver_split_dict(tmp_path: Path) -> None:
    """ogb 1.3.6 DatasetSaver: raw/data.npz (+ num_*_list), raw/node-label.npz, split/<name>/split_dict.pt."""
    src = _npz(tmp_path, num_nodes_list=np.array([4]), num_edges_list=np.array([3]))
    np.savez(src / "raw" / "node-label.npz", node_label=np.array([[0], [1], [1], [0]], dtype=np.int64))
    (src / "split" / "random").mkdir(parents=True)
    torch.save({"train": np.array([3, 0]), "valid": np.array([1]), "test": np.array([2])},
               src / "split" / "random" / "split_dict.pt")
    g = open_store(import_ogb(src, tmp_path / "s"))
    assert torch.equal(g.train_ids, torch.tensor([0, 3]))  # sorted


def test_split_dict_that_is_not_a_dict(tmp_path: Path) -> None:
    src = _npz(tmp_path)
    (src / "split" / "x").mkdir(parents=True)
    torch.save([1, 2], src / "split" / "x" / "split_dict.pt")
    with pytest.raises(StoreError, match="expected a dict with a 'train' entry"):
        import_ogb(src, tmp_path / "s")


def test_int64_features_kept_with_a_note(tmp_path: Path) -> None:
    store = import_ogb(_npz(tmp_path, feats=np.arange(8, dtype=np.int64).reshape(4, 2)), tmp_path / "s")
    m = read_manifest(store)
    assert m["dtype"] == "int64" and m["source"]["notes"] == ["int64 integer features kept as int64"]
    assert torch.equal(open_store(store).features, torch.arange(8).reshape(4, 2))


def test_cli_bad_import_option_value_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _npz(tmp_path)
    assert main(["make-graph", str(tmp_path / "s"), "--from", "ogb", "--src", str(src), "-x", "chunk_bytes=abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chunk_bytes" in err and "'abc'" in err


def test_cli_import_with_options(tmp_path: Path) -> None:
    """The command docs/IMPORTERS.md shows."""
    src = _npz(tmp_path)
    assert main(["make-graph", str(tmp_path / "s"), "--from", "ogb", "--src", str(src),
                 "-x", "symmetrize=false", "-x", "allow_empty_edges=true"]) == 0
    m = json.loads((tmp_path / "s" / MANIFEST).read_text())
    assert m["num_edges"] == 3 and m["source"]["options"]["symmetrize"] is False
