"""Issue 11 item 10: prepare checks that the store's filesystem accepts O_DIRECT and says so plainly when not."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from accessbench.kernels import registry
from accessbench.kernels.errors import StrategyUnavailable
from accessbench.kernels.strategies.out_of_core import direct
from accessbench.kernels.strategies.out_of_core.pagecache import filesystem_of
from tests.kernels.out_of_core.ooc_support import make_store


def _refusing(code: int, *, at: str) -> tuple:
    real_open, real_preadv = os.open, os.preadv
    direct_fds: set[int] = set()

    def fake_open(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_DIRECT and at == "open":
            raise OSError(code, os.strerror(code))
        fd = real_open(path, flags, *args)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def fake_preadv(fd, buffers, offset):  # type: ignore[no-untyped-def]
        if fd in direct_fds and at == "read":
            raise OSError(code, os.strerror(code))
        return real_preadv(fd, buffers, offset)

    return fake_open, fake_preadv


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EOPNOTSUPP])
@pytest.mark.parametrize("at", ["open", "read"])
def test_check_odirect_names_the_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int,
                                            at: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 8192)
    fake_open, fake_preadv = _refusing(code, at=at)
    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "preadv", fake_preadv)
    fstype, mnt = filesystem_of(path)
    with pytest.raises(StrategyUnavailable) as info:
        direct.check_odirect(path)
    msg = str(info.value)
    assert f"on the {fstype} filesystem mounted at {mnt}" in msg and errno.errorcode[code] in msg
    assert "io=mmap" in msg and "ext4 or xfs" in msg


def test_check_odirect_passes_where_the_filesystem_accepts_it(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\1" * 8192)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        os.close(fd)
    except OSError:
        pytest.skip("this filesystem refuses O_DIRECT")
    direct.check_odirect(path)  # no error


def test_prepare_refuses_io_direct_up_front(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = make_store(tmp_path, num_nodes=200, feat_dim=8)
    fake_open, fake_preadv = _refusing(errno.EINVAL, at="read")
    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "preadv", fake_preadv)
    with registry.create("out-of-core", io="direct") as s, pytest.raises(StrategyUnavailable,
                                                                          match="O_DIRECT is refused.*io=mmap"):
        s.prepare(graph, torch.device("cpu"))
    with registry.create("out-of-core", io="mmap") as s:  # mmap does not need it
        s.prepare(graph, torch.device("cpu"))
