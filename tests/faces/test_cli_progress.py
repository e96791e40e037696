"""Long commands show progress on a terminal (a bar once the service reports a fraction, a
spinner with the time elapsed until then), and nothing in a pipe."""

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


def test_busy_shows_the_fraction_a_service_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    from kiln.core.progress import Progress

    out = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=out, force_terminal=True, width=100))
    with _common.busy("exporting flights"):
        work = Progress(4)  # what a service does in the call the command makes
        for _ in range(3):
            work.advance()
    assert "75%" in out.getvalue(), out.getvalue()[-300:]
    quiet = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=quiet, force_terminal=True, width=100))
    with _common.busy("profiling flights"):
        pass  # no service reported a fraction: no percentage
    assert "profiling flights" in quiet.getvalue() and "%" not in quiet.getvalue()


def test_busy_passes_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "err_console", Console(file=io.StringIO(), force_terminal=True))
    with pytest.raises(ValueError, match="boom"), _common.busy("working"):
        raise ValueError("boom")


def test_json_output_gives_times_as_iso_8601(capsys: pytest.CaptureFixture[str]) -> None:
    import orjson

    _common.print_json([{"created_at": 1796570431.5, "time": 1796570431, "timestamps": [1796570431.0], "step": 1800000000, "updated_at": None}])
    (row,) = orjson.loads(capsys.readouterr().out)
    assert row == {"created_at": "2026-12-06T15:20:31.500000Z", "time": "2026-12-06T15:20:31Z", "timestamps": ["2026-12-06T15:20:31Z"], "step": 1800000000, "updated_at": None}
