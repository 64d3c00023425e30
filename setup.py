"""Packaging: the layer folders at the repository root install under one import name, ``accessbench``.

Metadata lives in pyproject.toml; this file only maps folders to packages (``kernels/`` -> ``accessbench.kernels``
and so on), so no top-level ``kernels``, ``suite``, ``workloads`` or ``reports`` module is ever installed.
"""

from setuptools import find_packages, setup

LAYERS = ("kernels", "workloads", "suite", "reports")

packages = ["accessbench"]
package_dir = {"accessbench": "accessbench"}
for layer in LAYERS:
    package_dir[f"accessbench.{layer}"] = layer
    packages += [f"accessbench.{layer}"] + [f"accessbench.{layer}.{p}" for p in find_packages(layer)]

setup(packages=packages, package_dir=package_dir)
