"""The ``accessbench`` command line: discovers the subcommands in ``accessbench.suite.cli`` and runs one."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from accessbench.kernels.errors import AccessBenchError

__all__ = ["build_parser", "fail", "main"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"accessbench: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one clear line on stderr and return ``code``."""
    sys.stderr.write(f"accessbench: error: {message}\n")
    sys.stderr.flush()
    return code


def _commands() -> list[ModuleType]:
    import accessbench.suite.cli as pkg

    mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)
            if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: getattr(m, "ORDER", 50))


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The top-level parser and the command modules by name."""
    parser = _Parser(prog="accessbench", description="Benchmark how GPUs reach large-graph GNN data.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    table: dict[str, ModuleType] = {}
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "__doc__", None) or mod.HELP)
        mod.add_arguments(p)
        table[mod.NAME] = mod
    return parser, table


#: Options whose values may start with a minus sign (``--fanouts -1,-1``: -1 keeps every neighbour).
NEGATIVE_VALUE_OPTIONS = ("--fanouts",)


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--fanouts -1,-1`` -> ``--fanouts=-1,-1`` (argparse would read ``-1,-1`` as an unknown option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in NEGATIVE_VALUE_OPTIONS and value.removeprefix("-")[:1].isdigit():
            out.append(f"{argv[i]}={value}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``accessbench`` console script."""
    parser, table = build_parser()
    args = parser.parse_args(_join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(table[args.command].run(args) or 0)
    except AccessBenchError as exc:
        return fail(str(exc))
    except BrokenPipeError:  # e.g. `accessbench list | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, ValueError) as exc:
        detail = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else str(exc)
        return fail(detail)
    except KeyboardInterrupt:
        return fail("interrupted; results measured so far are kept", 130)


if __name__ == "__main__":
    sys.exit(main())
