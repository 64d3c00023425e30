"""CLI subcommands, one module each, discovered by ``suite.cli``.

A command module defines ``NAME`` (the subcommand), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Errors derived from ``kernels.errors.AccessBenchError`` (and ``OSError``,
``ValueError``) become one line on stderr and exit status 2; nothing else needs to handle them.
"""
