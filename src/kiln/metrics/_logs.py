"""Logs of jobs and endpoints behind one reader: ``job/NAME`` reads the jobs stage's log
lines (appended by the job's runner), ``endpoint/NAME`` the endpoint's supervisor and worker
output, copied from its log file into ``kiln_log_lines`` with the time it was read (on each
read and by the server every minute), so an endpoint's log stays readable by time, after a
restart and after the endpoint is deleted, until it ages out.

Paging is by sequence number (``offset``: the last line read); ``--follow`` polls with it.
``grep`` is a regular expression with the constructs that can take exponential time
refused (nested repetition, backreferences, lookaround), on lines cut to 8 KB.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.metrics import _tables as t
from kiln.metrics._base import parse_since
from kiln.metrics._models import LogLine, LogPage

__all__ = ["LogService", "check_grep", "ingest_endpoint_log"]

KINDS = ("job", "endpoint")
MAX_LINE = 8192
MAX_READ = 4 << 20  # bytes copied from an endpoint's log file per catch-up
MAX_PAGE = 10_000


def check_grep(pattern: str | None) -> re.Pattern[str] | None:
    """Compile a grep pattern, refusing what could take exponential time on a line."""
    if pattern is None or pattern == "":
        return None
    if len(pattern) > 256:
        raise InvalidArgument("grep pattern is over 256 characters; use a shorter one")
    try:
        from re import _parser  # type: ignore[attr-defined]

        tree = _parser.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise InvalidArgument(f"grep pattern {pattern[:80]!r} is not a valid regular expression: {exc}") from None
    repeats = _walk(tree.data if hasattr(tree, "data") else list(tree), depth=0)
    if repeats > 10:
        raise InvalidArgument("grep pattern has more than 10 repetitions; use a simpler one")
    return compiled


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_REFUSED = {"GROUPREF", "GROUPREF_EXISTS", "ASSERT", "ASSERT_NOT"}


def _walk(items: Any, *, depth: int) -> int:
    """Count repetitions; raise on a repetition inside a repetition, or a refused construct."""
    count = 0
    for op, arg in items:
        name = str(op)
        if name in _REFUSED:
            raise InvalidArgument("grep patterns may not use backreferences or lookaround; use a plain expression")
        if name in _REPEATS:
            lo, hi, sub = arg
            if depth and hi != 1:
                raise InvalidArgument("grep pattern repeats a repetition (like (a+)+), which can take exponential time; simplify it")
            count += 1 + _walk(sub.data if hasattr(sub, "data") else sub, depth=depth + (1 if hi != 1 else 0))
        elif name == "SUBPATTERN":
            sub = arg[-1]
            count += _walk(sub.data if hasattr(sub, "data") else sub, depth=depth)
        elif name == "BRANCH":
            if depth:
                raise InvalidArgument("grep pattern repeats an alternation (like (a|aa)*), which can take exponential time; simplify it")
            for alt in arg[1]:
                count += _walk(alt.data if hasattr(alt, "data") else alt, depth=depth)
    return count


def _source(kind: str, name: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"unknown log kind {str(kind)[:40]!r}: use job/NAME or endpoint/NAME")
    check_name(name, kind=kind)
    return f"{kind}/{name}"


def ingest_endpoint_log(ws: Workspace, name: str, *, now: float | None = None) -> int:
    """Copy the new complete lines of the endpoint's log file into the store; returns how many.
    The lines and the file offset they end at commit together: a killed copy repeats nothing."""
    from kiln.metrics._service import write_with_retry
    from kiln.serving._service import endpoint_dir

    path = endpoint_dir(ws.settings.home, name) / "supervisor.log"
    now = time.time() if now is None else now
    key = f"log:endpoint/{name}"

    def copy(conn: Any) -> int:
        q = sa.select(t.cursors).where(t.cursors.c.source == key)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).first()
        state = orjson.loads(row.state) if row else {"offset": 0, "seq": 0, "inode": None}
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                offset = state["offset"] if state.get("inode") == st.st_ino and st.st_size >= state["offset"] else 0
                f.seek(offset)
                chunk = f.read(MAX_READ)
        except FileNotFoundError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) < MAX_READ:
                return 0  # a line still being written
            end = len(chunk) - 1
        lines = chunk[: end + 1].decode("utf-8", "replace").splitlines()
        seq = int(state["seq"])
        rows = []
        for text in lines:
            seq += 1
            rows.append({"source": f"endpoint/{name}", "seq": seq, "at": now, "text": text[:MAX_LINE]})
        if rows:
            conn.execute(t.log_lines.insert(), rows)
        new_state = orjson.dumps({"offset": offset + end + 1, "seq": seq, "inode": st.st_ino}).decode()
        if row is None:
            conn.execute(t.cursors.insert().values(source=key, state=new_state, at=now))
        else:
            conn.execute(t.cursors.update().where(t.cursors.c.source == key).values(state=new_state, at=now))
        return len(rows)

    return int(write_with_retry(ws, copy) or 0)


class LogService:
    """Read the logs of a job or an endpoint, by offset, time and pattern."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def read(self, *, kind: str, name: str, offset: int = 0, since: str | None = None, grep: str | None = None, limit: int = 1000) -> LogPage:
        """Log lines of ``job/NAME`` or ``endpoint/NAME`` after line ``offset`` (0: from the start).

        ``since`` keeps lines written from then on (``10m``, ``2h``, an ISO-8601 time or Unix
        seconds); ``grep`` keeps lines matching a regular expression. ``next`` is the offset
        to read on from; ``done`` is true once a job has ended and every line was read.

        Raises:
            NotFound: no such job, or an endpoint with no log.
            InvalidArgument: a bad kind, name, time or pattern.
        """
        source = _source(kind, name)
        self.ctx.require("viewer")
        if not isinstance(offset, int) or offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument(f"offset must be ≥ 0 and limit between 1 and {MAX_PAGE}")
        after_time = parse_since(since) if since else None
        pattern = check_grep(grep)
        job_done = False
        if kind == "job":
            from kiln.jobs import _tables as jt
            from kiln.jobs._service import JobService

            job_done = JobService(self.ws, self.ctx).get(name=name).done
            table, col, key = jt.job_logs, jt.job_logs.c.job, name
        else:
            self._endpoint_exists(name)
            ingest_endpoint_log(self.ws, name)
            table, col, key = t.log_lines, t.log_lines.c.source, source
        scan = min(MAX_PAGE * 5, limit * 10) if pattern else limit
        q = sa.select(table.c.seq, table.c.at, table.c.text).where(col == key, table.c.seq > offset)
        if after_time is not None:
            q = q.where(table.c.at >= after_time)
        with self.ws.db.read() as conn:
            rows = conn.execute(q.order_by(table.c.seq).limit(scan)).all()
            more = len(rows) == scan
        lines: list[LogLine] = []
        nxt = offset
        for r in rows:
            nxt = r.seq
            text = r.text[:MAX_LINE]
            if pattern is None or pattern.search(text):
                lines.append(LogLine(seq=r.seq, time=r.at, text=text))
                if len(lines) == limit:
                    more = more or r is not rows[-1]
                    break
        return LogPage(source=source, lines=lines, next=nxt, done=job_done and not more)

    def _endpoint_exists(self, name: str) -> None:
        from kiln.serving import _tables as st

        with self.ws.db.read() as conn:
            if conn.execute(sa.select(st.endpoints.c.name).where(st.endpoints.c.name == name)).first():
                return
            if conn.execute(sa.select(t.log_lines.c.seq).where(t.log_lines.c.source == f"endpoint/{name}").limit(1)).first():
                return  # deleted, its log kept until it ages out
        raise NotFound(f"endpoint {name!r} does not exist and has no log kept; `kiln endpoints ls` lists endpoints")
