"""Run references: wherever a run id is taken, a name or a unique id prefix is taken too.

A run reference is one of (DESIGN.md §4):

* a full run id, 32 lower-case hex digits (no lookup: the caller's own read says NotFound);
* a unique prefix of an id, at least 6 hex digits (``3f9a1c``), as the tables print them;
* ``experiment/run-name``;
* a bare ``run-name``, when one run in the whole workspace has it.

Ambiguity is an error, never a guess: a prefix or a name that matches several runs
raises InvalidArgument listing them (newest first), so that a script never logs to,
compares or registers against a run it did not mean. A hex string that is a valid
prefix but matches no id is then tried as a run name.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.errors import InvalidArgument, NotFound
from kiln.core.names import check_name
from kiln.tracking._base import check_run_name
from kiln.tracking._tables import experiments, runs

__all__ = ["MIN_PREFIX", "check_run_ref", "is_run_id", "resolve_run"]

MIN_PREFIX = 6
_FULL = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{%d,31}" % MIN_PREFIX)
_SHOWN = 10
_FORMS = (
    "a run is its id (32 hex digits), a unique id prefix of at least 6 hex digits, "
    "`experiment/run-name` or a run name, as `kiln runs ls EXPERIMENT` shows"
)


def is_run_id(ref: Any) -> bool:
    return isinstance(ref, str) and _FULL.fullmatch(ref) is not None


def check_run_ref(ref: Any) -> str:
    """Return ``ref`` if it has the shape of a run reference, else raise InvalidArgument.

    Only the characters are checked here (no lookup): hostile strings stop before any query.
    """
    if isinstance(ref, str) and len(ref) <= 200:
        if _FULL.fullmatch(ref) or _PREFIX.fullmatch(ref):
            return ref
        experiment, sep, name = ref.partition("/")
        try:
            if sep:
                check_name(experiment, kind="experiment")
            check_run_name(name if sep else ref)
            return ref
        except InvalidArgument:
            pass
    raise InvalidArgument(f"invalid run {str(ref)[:80]!r}: {_FORMS}")


def _candidates(rows: list[Any]) -> str:
    shown = ", ".join(f"{r.id[:12]} ({r.experiment_name}/{r.name})" for r in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return shown + more


def resolve_run(conn: Connection, ref: Any) -> str:
    """The full id of the run ``ref`` names (see the module's docstring).

    Raises:
        InvalidArgument: ``ref`` is not a run reference, or it names several runs.
        NotFound: no run has that id prefix or name.
    """
    check_run_ref(ref)
    if _FULL.fullmatch(ref):
        return str(ref)
    q = (
        sa.select(runs.c.id, runs.c.name, experiments.c.name.label("experiment_name"))
        .select_from(runs.join(experiments, experiments.c.id == runs.c.experiment_id))
        .order_by(runs.c.start_time.desc(), runs.c.id)
        .limit(_SHOWN + 41)
    )
    if _PREFIX.fullmatch(ref):
        rows = conn.execute(q.where(runs.c.id.like(ref + "%"))).all()
        if len(rows) == 1:
            return str(rows[0].id)
        if rows:
            raise InvalidArgument(f"run id prefix {ref!r} is ambiguous: it matches {_candidates(rows)}; give more digits")
        if not _is_name(ref):
            raise NotFound(f"no run id starts with {ref!r}; `kiln runs ls EXPERIMENT` lists runs")
    experiment, sep, name = ref.partition("/")
    if sep:
        rows = conn.execute(q.where(experiments.c.name == experiment, runs.c.name == name)).all()
        where = f"in experiment {experiment!r}"
    else:
        rows = conn.execute(q.where(runs.c.name == ref)).all()
        where = "in any experiment"
    if len(rows) == 1:
        return str(rows[0].id)
    if not rows:
        raise NotFound(f"no run {ref!r}: no run id starts with it and no run {where} is named so; {_FORMS}")
    raise InvalidArgument(
        f"run name {ref!r} is ambiguous: {len(rows) if len(rows) <= _SHOWN + 40 else 'over 50'} runs {where} have it: "
        f"{_candidates(rows)}; name one by its id or id prefix"
        + ("" if sep else ", or as experiment/run-name")
    )


def _is_name(ref: str) -> bool:
    try:
        check_run_name(ref)
    except InvalidArgument:
        return False
    return True
