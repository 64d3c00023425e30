"""Every `accessbench ...` command written in README.md, docs/ and examples/ parses with the real CLI.

Commands are taken from code blocks (every line) and inline code (three words or more: shorter ones name a command
in prose, ``accessbench trace``); usage synopses (``[...]``, ``|``, one-letter placeholders) and prose arrows are
skipped. A documented flag that does not exist (as ``make-graph --no-symmetrize`` once did) fails here. Commands
that run real work are exercised on tiny inputs by the CLI tests (tests/suite/cli/).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from accessbench.suite.cli import build_parser
from accessbench.suite.cli.entry import _join_negative_values

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "README.md"]


def _commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in DOCS:
        if not path.exists():
            continue
        text = path.read_text().replace("\\\n", " ")
        blocks = [(b, False) for b in re.findall(r"```[^\n]*\n(.*?)```", text, re.S)]
        blocks += [(b, True) for b in re.findall(r"`([^`\n]+)`", text)]
        for block, inline in blocks:
            for line in block.splitlines():
                m = re.search(r"(?:^|\s|-m )accessbench ([^#]*)", line)
                if m is None or "──" in line:
                    continue
                cmd = m.group(1).strip()
                if not cmd or any(c in cmd for c in "[]|<>…") or "..." in cmd:
                    continue
                if (inline and len(cmd.split()) < 3) or re.search(r"(?:^|\s)[A-Z](?:\s|$)", cmd):
                    continue
                found.append((f"{path.name}: accessbench {cmd}", cmd))
    return sorted(set(found))


COMMANDS = _commands()


def test_the_docs_name_many_commands() -> None:
    assert len(COMMANDS) >= 20
    verbs = {shlex.split(cmd)[0] for _, cmd in COMMANDS}
    assert {"run", "list", "report", "make-graph", "study", "check", "simulate", "trace", "probe"} <= verbs


@pytest.mark.parametrize(("where", "cmd"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, cmd: str) -> None:
    parser, _ = build_parser()
    try:
        parser.parse_args(_join_negative_values(shlex.split(cmd)))  # as main() reads the command line
    except SystemExit as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{where} does not parse (exit {exc.code})")
