"""Run one ``check --gpu`` section in its own process (a sticky CUDA error cannot spoil the next section).

Usage: ``python -m accessbench.suite.gpu_checks._section_worker MODULE QUICK OUT_JSON``; writes the rows as JSON.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from pathlib import Path

import torch

from accessbench.suite.gpu_checks import GpuCheckContext


def main(argv: list[str]) -> int:
    module, quick, out = argv[0], argv[1] == "1", Path(argv[2])
    mod = importlib.import_module(f"accessbench.suite.gpu_checks.{module}")
    ctx = GpuCheckContext(device=torch.device("cuda", torch.cuda.current_device()), quick=quick, out_dir=out.parent)
    rows = mod.run(ctx)
    out.write_text(json.dumps([dataclasses.asdict(r) for r in rows], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
