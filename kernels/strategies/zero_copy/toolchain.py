"""Triton's ptxas against the driver: the gather kernel is assembled by the ptxas that triton uses, and a driver of
an older CUDA refuses the image it makes ("device kernel image is invalid") at the first launch. This module finds
that ptxas the way triton does, reads its CUDA version (``ptxas --version``) and the driver's
(``cuDriverGetVersion``), and says plainly what to do when they do not fit. Plain Python: imports triton only to ask
it for its ptxas, and never compiles anything.

Triton (3.x) picks ``backends/nvidia/bin/ptxas`` for targets below sm_90 and ``ptxas-blackwell`` (a newer CUDA) for
sm_90 and up, each overridable by ``TRITON_PTXAS_PATH`` / ``TRITON_PTXAS_BLACKWELL_PATH``.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .cuda_driver import driver_cuda_version

__all__ = [
    "Toolchain",
    "check_toolchain",
    "driver_cuda",
    "find_ptxas",
    "mismatch_message",
    "parse_cuda_version",
    "ptxas_cuda_version",
    "version_text",
]

Version = tuple[int, int]


def parse_cuda_version(text: str) -> Version | None:
    """``(13, 4)`` from ``ptxas --version`` output (``... release 13.4, V13.4.59``); None if absent."""
    m = re.search(r"release (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def version_text(v: Version | None) -> str | None:
    """``(12, 4)`` -> ``"12.4"``."""
    return None if v is None else f"{v[0]}.{v[1]}"


def driver_cuda(raw: int | None = None) -> Version | None:
    """The driver's CUDA version as (major, minor), from ``cuDriverGetVersion``'s integer (12040 -> (12, 4)), or
    from ``raw`` when given (``nvmlSystemGetCudaDriverVersion`` gives the same encoding)."""
    value = driver_cuda_version() if raw is None else raw
    if not value or value <= 0:
        return None
    return value // 1000, value % 1000 // 10


def _env_name(arch: int) -> str:
    return "TRITON_PTXAS_PATH" if arch < 90 else "TRITON_PTXAS_BLACKWELL_PATH"


def find_ptxas(arch: int) -> tuple[str | None, str]:
    """(path of the ptxas triton uses for sm_``arch`` or None, the environment variable that overrides it).

    Asks triton (``triton.backends.nvidia.compiler.get_ptxas``); where that API is missing, follows the same rule:
    the override variable if it names a file, else the binary bundled in ``triton/backends/nvidia/bin``."""
    env = _env_name(arch)
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        asked: str | None = str(get_ptxas(arch).path)
    except Exception:  # noqa: BLE001 - an older or newer triton, or none: fall back to the rule below
        asked = None
    if asked:
        return asked, env
    override = os.environ.get(env)
    if override and Path(override).is_file():
        return override, env
    try:
        import triton
    except ImportError:
        return None, env
    binary = "ptxas" if arch < 90 else "ptxas-blackwell"
    for name in (binary, "ptxas"):
        path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
        if path.is_file():
            return str(path), env
    return None, env


@functools.cache
def ptxas_cuda_version(path: str) -> Version | None:
    """The CUDA release of the ptxas at ``path`` (runs ``ptxas --version``); None if it cannot be run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_cuda_version(out)


@dataclass(frozen=True)
class Toolchain:
    """What assembles and what loads the kernel: triton's ptxas for the device's arch and the driver's CUDA."""

    arch: int  # e.g. 90 for sm_90 (H100, H200)
    ptxas_path: str | None
    ptxas_env: str  # the variable that points triton at another ptxas for this arch
    ptxas_cuda: Version | None
    driver_cuda: Version | None

    @property
    def problem(self) -> str | None:
        """Why the driver would refuse triton's kernels, or None where it will load them (or cannot be told)."""
        return mismatch_message(self)

    def describe(self) -> dict[str, str | None]:
        """``{"ptxas_cuda": "13.4", "driver_cuda": "12.4"}`` (None where unknown), for stats and the env stamp."""
        return {"ptxas_cuda": version_text(self.ptxas_cuda), "driver_cuda": version_text(self.driver_cuda)}


def mismatch_message(tc: Toolchain) -> str | None:
    """The user-facing reason the driver cannot load what triton's ptxas assembles (its CUDA is newer than the
    driver's; CUDA drivers load images of their own CUDA version and older), with what to do; None when they fit or
    either version is unknown."""
    if tc.ptxas_cuda is None or tc.driver_cuda is None or tc.ptxas_cuda <= tc.driver_cuda:
        return None
    return (f"triton assembles sm_{tc.arch} kernels with the ptxas of CUDA {version_text(tc.ptxas_cuda)} "
            f"({tc.ptxas_path}), but the NVIDIA driver supports CUDA {version_text(tc.driver_cuda)} only: it would "
            f"refuse the kernel image ('device kernel image is invalid'). Install the triton that the installed torch "
            f"was built with (pip install --force-reinstall torch pulls the matching triton), point {tc.ptxas_env} at "
            f"a ptxas of CUDA {version_text(tc.driver_cuda)} or older (e.g. /usr/local/cuda/bin/ptxas), or update "
            f"the driver to one of CUDA {version_text(tc.ptxas_cuda)} or newer")


@functools.cache
def _toolchain(arch: int, env_value: str | None) -> Toolchain:
    path, env = find_ptxas(arch)
    return Toolchain(arch=arch, ptxas_path=path, ptxas_env=env,
                     ptxas_cuda=ptxas_cuda_version(path) if path else None, driver_cuda=driver_cuda())


def check_toolchain(arch: int) -> Toolchain:
    """The toolchain for sm_``arch`` (cached per arch and override variable); see ``Toolchain.problem``."""
    return _toolchain(arch, os.environ.get(_env_name(arch)))
