"""Experiments: named groups of runs, created explicitly or by the first run logged to them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import AlreadyExists, InvalidArgument, NotFound
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.tracking._base import MAX_VALUE_LEN, check_key
from kiln.tracking._models import Experiment
from kiln.tracking._tables import experiments, runs

__all__ = ["ExperimentService"]


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (tags or {}).items():
        text = str(value)
        if len(text) > MAX_VALUE_LEN:
            raise InvalidArgument(f"tag {key!r} is longer than {MAX_VALUE_LEN} characters")
        out[check_key(key, kind="tag")] = text
    return out


_Q_ID = sa.select(experiments.c.id).where(experiments.c.name == sa.bindparam("name"))


def ensure_experiment(conn: Connection, ctx: Context, name: str) -> tuple[str, bool]:
    """The id of experiment ``name``, creating it when missing: (id, created)."""
    row = conn.execute(_Q_ID, {"name": name}).first()
    if row is not None:
        return row.id, False
    new_id = uuid.uuid4().hex
    stmt = _insert(conn)(experiments).values(
        id=new_id, name=name, description="", tags="{}", created_at=time.time(), created_by=ctx.actor
    ).on_conflict_do_nothing(index_elements=["name"])
    conn.execute(stmt)
    found = conn.execute(_Q_ID, {"name": name}).scalar_one()
    return found, found == new_id


def _experiment(row: Any, run_count: int | None = None) -> Experiment:
    return Experiment(
        id=row.id, name=row.name, description=row.description, tags=orjson.loads(row.tags or "{}"),
        created_at=row.created_at, created_by=row.created_by, run_count=run_count,
    )


class ExperimentService:
    """Create, read and describe experiments."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(self, *, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Experiment:
        """Create an experiment.

        Raises:
            AlreadyExists: an experiment has this name.
            InvalidArgument: the name or a tag is invalid.
        """
        check_name(name, kind="experiment")
        if not isinstance(description, str):
            raise InvalidArgument("description must be text")
        if tags is not None and not isinstance(tags, Mapping):
            raise InvalidArgument("tags must be a mapping of names to values")
        clean = check_tags(tags)
        row = {
            "id": uuid.uuid4().hex, "name": name, "description": description[:MAX_VALUE_LEN],
            "tags": orjson.dumps(clean).decode(), "created_at": time.time(), "created_by": self.ctx.actor,
        }
        with self.ws.mutation(self.ctx, action="experiments.create", resource=f"experiments/{name}") as (conn, _):
            if conn.execute(sa.select(experiments.c.id).where(experiments.c.name == name)).first():
                raise AlreadyExists(f"experiment {name!r} already exists; runs can be logged to it as it is")
            conn.execute(experiments.insert().values(**row))
        return Experiment(**{**row, "tags": clean}, run_count=0)

    def get(self, *, name: str) -> Experiment:
        """One experiment with its run count.

        Raises:
            NotFound: no experiment has this name.
        """
        check_name(name, kind="experiment")
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
            if row is None:
                raise NotFound(f"experiment {name!r} does not exist; `kiln experiments ls` lists them")
            count = conn.execute(sa.select(sa.func.count()).where(runs.c.experiment_id == row.id)).scalar_one()
        return _experiment(row, count)

    def list(self) -> list[Experiment]:
        """Every experiment, newest first, with run counts."""
        counts = sa.select(runs.c.experiment_id, sa.func.count().label("n")).group_by(runs.c.experiment_id).subquery()
        q = (
            sa.select(experiments, counts.c.n)
            .select_from(experiments.outerjoin(counts, counts.c.experiment_id == experiments.c.id))
            .order_by(experiments.c.created_at.desc())
        )
        with self.ws.db.read() as conn:
            return [_experiment(r, r.n or 0) for r in conn.execute(q)]

    def update(self, *, name: str, description: str | None = None, tags: dict[str, str] | None = None) -> Experiment:
        """Change an experiment's description or merge tags into it."""
        check_name(name, kind="experiment")
        clean = check_tags(tags)
        with self.ws.mutation(self.ctx, action="experiments.update", resource=f"experiments/{name}") as (conn, _):
            row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
            if row is None:
                raise NotFound(f"experiment {name!r} does not exist; `kiln experiments ls` lists them")
            values: dict[str, Any] = {}
            if description is not None:
                values["description"] = description[:MAX_VALUE_LEN]
            if clean:
                values["tags"] = orjson.dumps({**orjson.loads(row.tags or "{}"), **clean}).decode()
            if values:
                conn.execute(experiments.update().where(experiments.c.id == row.id).values(**values))
        return self.get(name=name)
