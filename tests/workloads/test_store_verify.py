"""Full verification on first use, the record that makes later opens fast, and the exact-size and finiteness checks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from accessbench.kernels.errors import StoreError
from accessbench.suite.cli import main
from accessbench.workloads import store as st
from accessbench.workloads.store import VERIFIED, StoreWriter, open_store, read_manifest, verify_store


def _write(path: Path, *, n: int = 40, d: int = 6, feats: torch.Tensor | None = None, nonfinite: bool = False) -> Path:
    indptr = torch.arange(n + 1, dtype=torch.int64)
    with StoreWriter(path) as w:
        w.append("indptr", indptr)
        w.append("indices", (torch.arange(n, dtype=torch.int32) + 1) % n)
        w.append("features", torch.randn(n, d) if feats is None else feats)
        w.append("train_ids", torch.arange(0, n, 2))
        w.finish(name="v", nonfinite=nonfinite)
    return path


def _age(path: Path, seconds: float = 60.0) -> None:
    """Set every file's mtime into the past (a fresh mtime is too racy to be recorded as verified)."""
    t = time.time() - seconds
    for f in path.iterdir():
        os.utime(f, (t, t))


def _rewrite(path: Path, **changes: object) -> None:
    m = read_manifest(path)
    for key, value in changes.items():
        if "." in key:
            arr, field = key.split(".")
            m["arrays"][arr][field] = value
        else:
            m[key] = value
    (path / "manifest.json").write_text(json.dumps(m))


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files fully scanned (digest checked) during the test."""
    seen: list[Path] = []
    real = st._scan

    def spy(fpath: Path, **kw: object) -> object:
        seen.append(fpath)
        return real(fpath, **kw)

    monkeypatch.setattr(st, "_scan", spy)
    return seen


def test_flipped_byte_in_a_large_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store over 256 MiB (sparse features) with one flipped byte in the middle, between the sampled chunks."""
    path = _write(tmp_path / "big", n=64, d=1)
    rows, width = 64, (1 << 20) + 64  # 64 rows of just over 4 MiB: 268 MB of float32 zeros
    f = path / "features.bin"
    with open(f, "r+b") as fh:
        fh.truncate(0)
        fh.truncate(rows * width * 4)
    size = rows * width * 4
    assert size > 256 << 20
    _rewrite(path, feat_dim=width, row_bytes=width * 4, row_stride=width * 4,
             **{"features.shape": [rows, width], "features.bytes": size,
                "features.blake2b": st._full_digest(f), "features.blake2b_sampled": st._sampled_digest(f, size)})
    open_store(path, verify=True)  # the intact store is fine
    with open(f, "r+b") as fh:
        fh.seek(size // 2 + 12345)  # not in any of the 16 sampled 1 MiB chunks
        fh.write(b"\x01")
    assert st._sampled_digest(f, size) == read_manifest(path)["arrays"]["features"]["blake2b_sampled"]
    with pytest.raises(StoreError, match="features.bin is corrupt"):
        open_store(path)  # the file changed since the last verification: checked in full
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "features.bin is corrupt (checksum mismatch)" in err


def test_later_opens_are_fast_until_a_file_changes(tmp_path: Path, scans: list[Path]) -> None:
    path = _write(tmp_path / "s")
    _age(path)
    open_store(path)
    names = ["indptr.bin", "indices.bin", "features.bin", "train_ids.bin"]
    assert [p.name for p in scans] == names and (path / VERIFIED).is_file()  # first use: every array in full
    scans.clear()
    open_store(path)
    assert scans == []  # recorded: only the cheap checks
    t = time.time() - 30
    os.utime(path / "features.bin", (t, t))  # same bytes, new mtime
    open_store(path)
    assert [p.name for p in scans] == names  # a changed mtime: checked in full again
    scans.clear()
    open_store(path)
    assert scans == []  # and recorded again


def test_changed_bytes_with_a_new_mtime_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "s")
    _age(path)
    open_store(path)
    f = path / "features.bin"
    data = bytearray(f.read_bytes())
    data[5] ^= 0x40
    f.write_bytes(bytes(data))
    _age(path, 30)
    with pytest.raises(StoreError, match="corrupt"):
        open_store(path)


def test_fresh_files_are_not_recorded(tmp_path: Path) -> None:
    path = _write(tmp_path / "s")
    open_store(path)  # mtimes within the racy window: verified, but not recorded
    assert not (path / VERIFIED).exists()


def test_read_only_store_records_in_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   scans: list[Path]) -> None:
    monkeypatch.setenv("ACCESSBENCH_CACHE", str(tmp_path / "cache"))
    path = _write(tmp_path / "s")
    (path / VERIFIED).mkdir()  # the record cannot be written beside the manifest (as in a read-only store)
    _age(path)
    open_store(path)
    assert list((tmp_path / "cache" / "verified").glob("*.json"))
    scans.clear()
    open_store(path)
    assert scans == []


def test_dtype_that_lies_about_item_size_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "s", n=40, d=6)  # float32 file: 960 bytes
    _rewrite(path, dtype="uint8", row_bytes=6, row_stride=6, **{"features.dtype": "uint8"})
    with pytest.raises(StoreError, match=r"features.bin is 960 bytes but the manifest's uint8 \[40, 6\] needs 240"):
        open_store(path)


def test_shape_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "s", n=40)
    _rewrite(path, **{"train_ids.shape": [400]})
    with pytest.raises(StoreError, match=r"train_ids.bin is 160 bytes but the manifest's int64 \[400\] needs 3200"):
        open_store(path)


def test_row_bytes_must_match_dtype_and_width(tmp_path: Path) -> None:
    path = _write(tmp_path / "s", n=40, d=6)
    _rewrite(path, row_bytes=12, row_stride=24)
    with pytest.raises(StoreError, match="row_bytes 12 is not feat_dim 6 x 4 bytes"):
        open_store(path)


def test_nonfinite_features_need_the_manifest_flag(tmp_path: Path) -> None:
    feats = torch.randn(40, 6)
    feats[7, 3] = float("nan")
    feats[9, 0] = float("inf")
    bad = _write(tmp_path / "bad", feats=feats)
    with pytest.raises(StoreError, match="2 non-finite values .* first at row 7, column 3"):
        open_store(bad)
    ok = _write(tmp_path / "ok", feats=feats, nonfinite=True)
    g = open_store(ok, verify=True)
    assert torch.isnan(g.features[7, 3]) and read_manifest(ok)["nonfinite"] is True


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nonfinite_check_covers_half_types(tmp_path: Path, dtype: torch.dtype) -> None:
    feats = torch.randn(40, 6).to(dtype)
    feats[39, 5] = float("-inf")
    with pytest.raises(StoreError, match="first at row 39, column 5"):
        verify_store(_write(tmp_path / "s", feats=feats))
