"""asv benchmarks for accessbench (configuration: asv.conf.json at the repository root; guide: docs/REPORTS.md).

With ``--python=same`` (an existing environment) asv does not install the project; when it is not installed, the
repository root is put on ``sys.path`` so the working tree is measured. An installed project (asv's own
virtualenvs, ``asv continuous``) always wins.
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("kernels") is None:  # pragma: no cover - depends on how asv was started
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
