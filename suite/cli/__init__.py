"""The ``accessbench`` command line: ``entry`` (the parser and ``main``) and one thin module per subcommand.

A command module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Errors derived from ``accessbench.kernels.errors.AccessBenchError`` (and ``OSError``,
``ValueError``) become one line on stderr and exit status 2; nothing else needs to handle them.
"""

from .entry import build_parser, fail, main

__all__ = ["build_parser", "fail", "main"]
