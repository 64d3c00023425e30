"""The packed layout: round trip, amplification ~1, and refusal of truncated or corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from accessbench.kernels import create
from accessbench.kernels.strategies.out_of_core.align import PAGE
from accessbench.kernels.strategies.out_of_core.direct import DirectFile
from accessbench.kernels.strategies.out_of_core.packed import PackedFileError, PackedWriter, open_packed
from accessbench.kernels.strategies.out_of_core.sources import SegmentSource
from tests.kernels.out_of_core.ooc_support import make_store, reference_features, require_odirect


def _write(tmp_path: Path) -> tuple[Path, list[torch.Tensor], list[torch.Tensor]]:
    require_odirect(tmp_path)
    g = torch.Generator().manual_seed(1)
    ids = [torch.randperm(500, generator=g)[:n] for n in (37, 0, 120)]
    rows = [torch.randn(i.numel(), 24, generator=g) for i in ids]
    w = PackedWriter(tmp_path / "sb.pack", row_bytes=96, dtype="float32", source={"path": "x"})
    for i, r in zip(ids, rows):
        w.add(i, r)
    w.finish()
    return tmp_path / "sb.pack", ids, rows


def _segments(path: Path) -> SegmentSource:
    return SegmentSource(DirectFile(path), open_packed(path), dtype=torch.float32, feat_dim=24, max_io_bytes=PAGE,
                         device=torch.device("cpu"))


def test_round_trip_segments_are_page_aligned(tmp_path: Path) -> None:
    path, ids, rows = _write(tmp_path)
    index = open_packed(path, expect_source={"path": "x"})
    assert index.num_segments == 3
    assert all(int(o) % PAGE == 0 for o in index.seg_offset)
    src = _segments(path)
    for b in range(3):
        assert torch.equal(index.segment_ids(b), ids[b])
        assert torch.equal(src.rows(b, buffer_bytes=PAGE), rows[b])  # spans read in one-page pieces
    src.close()


def test_corrupt_segment_is_refused_not_served(tmp_path: Path) -> None:
    path, _, rows = _write(tmp_path)
    index = open_packed(path)
    off, _ = index.segment_span(2)
    data = bytearray(path.read_bytes())
    data[off + 200] ^= 0x10
    path.write_bytes(bytes(data))
    src = _segments(path)
    assert torch.equal(src.rows(0), rows[0])  # the intact segment is still served
    with pytest.raises(PackedFileError, match="segment 2 fails its CRC-32"):
        src.rows(2)
    src.close()


def test_truncated_data_file_is_refused(tmp_path: Path) -> None:
    path, _, _ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-PAGE])
    with pytest.raises(PackedFileError, match="truncated"):
        open_packed(path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "missing"])
def test_damaged_index_is_refused(tmp_path: Path, damage: str) -> None:
    path, _, _ = _write(tmp_path)
    idx = path.with_suffix(".idx")
    raw = bytearray(idx.read_bytes())
    if damage == "truncate":
        idx.write_bytes(bytes(raw[:-40]))
    elif damage == "flip":
        raw[len(raw) // 2] ^= 1
        idx.write_bytes(bytes(raw))
    elif damage == "magic":
        idx.write_bytes(b"NOTPACK!" + bytes(raw[8:]))
    else:
        idx.unlink()
    with pytest.raises(PackedFileError):
        open_packed(path)


def test_packed_from_a_different_store_is_refused(tmp_path: Path) -> None:
    path, _, _ = _write(tmp_path)
    with pytest.raises(PackedFileError, match="different store"):
        open_packed(path, expect_source={"path": "y"})


def test_packed_layout_reads_about_the_bytes_it_needs(tmp_path: Path) -> None:
    g = make_store(tmp_path, num_nodes=20000, feat_dim=128, avg_degree=10)
    ref = reference_features(g)
    seeds = [torch.randperm(20000, generator=torch.Generator().manual_seed(i))[:256] for i in range(4)]
    with create("out-of-core", io="direct", layout="packed", superbatch=4) as s:
        s.prepare(g, torch.device("cpu"))
        s.reset_stats()
        for lb in s.load(seeds, [10, 5], generator=torch.Generator().manual_seed(0)):
            assert torch.equal(lb.features, ref[lb.batch.node_ids])
        st = s.stats()
    assert 1.0 <= st.extras["read_amplification"] <= 1.01
    assert st.extras["packed_bytes"] > 0 and st.extras["preprocess_s"] > 0
    assert st.extras["extra_storage_ratio"] > 0


def test_corruption_during_a_run_raises_instead_of_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = make_store(tmp_path, num_nodes=3000, feat_dim=32)
    original = PackedWriter.finish

    def finish_then_corrupt(self: PackedWriter):  # type: ignore[no-untyped-def]
        index = original(self)
        data = bytearray(self.data_path.read_bytes())
        data[index.segment_span(1)[0] + 5] ^= 0xFF
        self.data_path.write_bytes(bytes(data))
        return index

    monkeypatch.setattr(PackedWriter, "finish", finish_then_corrupt)
    seeds = [torch.arange(i * 50, i * 50 + 50) for i in range(3)]
    with create("out-of-core", io="direct", layout="packed", superbatch=3) as s:
        s.prepare(g, torch.device("cpu"))
        served = []
        with pytest.raises(PackedFileError, match="segment 1"):
            for lb in s.load(seeds, [4], generator=torch.Generator().manual_seed(0)):
                served.append(lb)
        assert len(served) == 1
