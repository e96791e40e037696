"""`kiln` starts fast: --help lists every command from a light table, a command imports
only its own module, and the table says what each command's own help says."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kiln import __version__
from kiln.cli.main import COMMANDS, load_command


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_table_matches_each_command(name: str) -> None:
    command = load_command(name)
    first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
    assert COMMANDS[name][2] == first_paragraph


def _imported(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kiln", *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout, {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def test_help_lists_every_command_without_importing_them() -> None:
    out, modules = _imported("--help")
    assert all(name in out for name in COMMANDS)
    heavy = {"sqlalchemy", "pyarrow", "pandas", "duckdb", "pydantic", "httpx", "alembic"}
    assert not modules & heavy and not {m for m in modules if m.startswith("kiln.cli.") and m != "kiln.cli.main"}


def test_version() -> None:
    out, _ = _imported("--version")
    assert out.strip() == f"kiln {__version__}"
