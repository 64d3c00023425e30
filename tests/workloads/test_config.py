"""Presets and workload files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.workloads.batches import random_ids, seed_batches
from accessbench.workloads.config import WorkloadError, load_workload, preset_names
from accessbench.workloads.graphs import materialise


def test_presets_load() -> None:
    names = preset_names()
    assert {"tiny", "default", "products-like", "papers100m-like", "igb-like"} <= set(names)
    for n in names:
        wl = load_workload(n)
        assert wl.steps >= 1 and wl.fanouts
    default = load_workload("default")
    assert default.graph.num_nodes == 1_000_000 and default.graph.feat_dim == 128
    assert load_workload("igb-like").graph.feat_dim == 1024


def test_unknown_preset() -> None:
    with pytest.raises(WorkloadError, match="unknown preset 'nope'; valid: .*tiny"):
        load_workload("nope")


@pytest.mark.parametrize("text, match", [
    ("[graph\nnum_nodes = 3", "malformed TOML"),
    ("bogus = 1\n[graph]\nnum_nodes = 10", "unknown key"),
    ("[graph]\nnum_nodes = 10\n[sampling]\nfanouts = [0]", "fanout"),
    ("[graph]\nnum_nodes = 0", "num_nodes"),
    ("mode = 'fly'\n[graph]\nnum_nodes = 10", "mode"),
    ("name = 'x'", "exactly one of"),
    ("[graph]\nnum_nodes = 10\n[model]\nname = 'gat9'", "model 'gat9'; valid: sage"),
])
def test_bad_workload_files(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "w.toml"
    f.write_text(text)
    with pytest.raises(WorkloadError, match=match):
        load_workload(str(f))


def test_workload_file_with_store(tmp_path: Path, tiny_store: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text(f"name = 'mine'\nstore = '{tiny_store}'\nmode = 'gather'\n[gather]\nids = 10\n")
    wl = load_workload(str(f))
    g = materialise(wl)
    assert g.num_nodes == 2000 and wl.mode == "gather"


def test_materialise_generates_once() -> None:
    wl = load_workload("tiny")
    g1 = materialise(wl)
    g2 = materialise(wl)
    assert g1.feature_file.path == g2.feature_file.path and torch.equal(g1.indices, g2.indices)


def test_seed_batches_cover_train_ids_and_repeat_with_seed(small_graph) -> None:
    a = list(seed_batches(small_graph, 10, seed=1, steps=15))
    b = list(seed_batches(small_graph, 10, seed=1, steps=15))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    train = set(small_graph.train_ids.tolist())
    assert all(set(x.tolist()) <= train and x.numel() == 10 for x in a)
    first_epoch = torch.cat(a[: len(train) // 10])
    assert first_epoch.unique().numel() == first_epoch.numel()
    ids = random_ids(100, 1000, generator=torch.Generator().manual_seed(0))
    assert ids.min() >= 0 and ids.max() < 100
