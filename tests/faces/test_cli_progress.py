"""Long commands show a spinner with the time elapsed on a terminal, and nothing in a pipe."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kiln.cli import _common


@pytest.mark.parametrize(("terminal", "shown"), [(True, True), (False, False)])
def test_busy_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch, terminal: bool, shown: bool) -> None:
    out = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=out, force_terminal=terminal, width=80))
    with _common.busy("profiling flights"):
        pass
    assert ("profiling flights" in out.getvalue()) is shown


def test_busy_passes_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "err_console", Console(file=io.StringIO(), force_terminal=True))
    with pytest.raises(ValueError, match="boom"), _common.busy("working"):
        raise ValueError("boom")
