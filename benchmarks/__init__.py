"""asv benchmarks for accessbench (configuration: asv.conf.json at the repository root; guide: docs/REPORTS.md).

The benchmarks import the installed ``accessbench`` package: with ``--python=same`` install the project first
(``pip install -e .``), as ``.ci/asv.sh`` does; asv's own virtualenvs install it themselves.
"""
