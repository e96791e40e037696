"""Logs: targets, times and patterns checked before any work; a pattern that could take
exponential time is refused cleanly; an endpoint's log copy repeats nothing and restarts
with a new file."""

from __future__ import annotations

import os
import time

import pytest

import kiln
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.workspace import Workspace
from kiln.metrics._base import parse_since
from kiln.metrics._logs import LogService, check_grep, ingest_endpoint_log

from .conftest import as_role


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a*)*b", "(a|aa)*b", "(.*a){20}", r"(a)\1", "(?=a)b", "(?<!a)b", "x" * 300, "(", "a{2,}{3}"])
def test_patterns_that_could_run_away_or_do_not_compile_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        check_grep(pattern)


@pytest.mark.parametrize(("pattern", "line", "hit"), [
    ("error", "an error here", True), ("^ERR", "ERR 1", True), (r"\d{3} ms", "took 250 ms", True), ("(foo|bar) baz", "bar baz", True),
    ("a.*b", "xyz", False), ("[", None, None),
])
def test_plain_patterns_work(pattern: str, line: str | None, hit: bool | None) -> None:
    if line is None:
        with pytest.raises(InvalidArgument):
            check_grep(pattern)
        return
    compiled = check_grep(pattern)
    assert compiled is not None and bool(compiled.search(line)) is hit


def test_since_takes_durations_iso_times_and_unix_seconds() -> None:
    now = 1_800_000_000.0
    assert parse_since("10m", now=now) == now - 600
    assert parse_since("2h", now=now) == now - 7200
    assert parse_since("1700000000", now=now) == 1_700_000_000.0
    assert parse_since("2026-01-01T00:00:00Z", now=now) == 1_767_225_600.0
    for bad in ("yesterday", "10 parsecs", "-5m", "1e400"):
        with pytest.raises(InvalidArgument):
            parse_since(bad, now=now)


@pytest.mark.parametrize(("kind", "name", "error"), [
    ("pod", "x", InvalidArgument), ("job", "../etc", InvalidArgument), ("job", "ghost", NotFound), ("endpoint", "ghost", NotFound),
])
def test_bad_targets(mws: Workspace, kind: str, name: str, error: type) -> None:
    with pytest.raises(error):
        LogService(mws, as_role("viewer")).read(kind=kind, name=name)


def test_sdk_targets_and_paging_are_checked(client: kiln.Client) -> None:
    for bad in ("job", "job/", "pod/x", "x"):
        with pytest.raises(InvalidArgument, match="job/NAME or endpoint/NAME"):
            client.logs.read(bad)
    with pytest.raises(InvalidArgument):
        client.logs.read("job/x", offset=-1)
    with pytest.raises(InvalidArgument):
        client.logs.read("job/x", limit=0)


def test_an_endpoint_log_copy_repeats_nothing_and_follows_a_new_file(mws: Workspace) -> None:
    from kiln.serving._service import endpoint_dir

    folder = endpoint_dir(mws.settings.home, "e9")
    folder.mkdir(parents=True)
    log = folder / "supervisor.log"
    log.write_text("one\ntwo\nthree without end")
    assert ingest_endpoint_log(mws, "e9") == 2
    assert ingest_endpoint_log(mws, "e9") == 0  # the unfinished line waits for its newline
    with open(log, "a") as f:
        f.write(" now\nfour\n")
    assert ingest_endpoint_log(mws, "e9") == 2
    os.unlink(log)
    log.write_text("fresh\n")  # a new file (the endpoint made again): read from its start
    assert ingest_endpoint_log(mws, "e9") == 1
    page = LogService(mws, as_role("viewer")).read(kind="endpoint", name="e9")  # no endpoint row, but its log is kept
    assert [line.text for line in page.lines] == ["one", "two", "three without end now", "four", "fresh"]
    assert [line.seq for line in page.lines] == [1, 2, 3, 4, 5]
    assert LogService(mws, as_role("viewer")).read(kind="endpoint", name="e9", offset=3, limit=1).lines[0].text == "four"
    assert LogService(mws, as_role("viewer")).read(kind="endpoint", name="e9", since=str(time.time() + 60)).lines == []
