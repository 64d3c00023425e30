"""accessbench: the reference benchmark for how GPUs reach large-graph GNN data.

The repository's layer folders install under this one import name (setuptools' package-dir mapping, setup.py):
``accessbench.kernels`` (the strategy contract and the strategies), ``accessbench.workloads`` (graphs, presets,
models), ``accessbench.suite`` (CLI, runner, measurement, telemetry, probe, simulator, studies) and
``accessbench.reports`` (result files -> tables, plots, HTML). Importing this package imports none of them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
