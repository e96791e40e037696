"""Run artifacts: files written to the object store first, then one row makes them visible."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import Conflict, NotFound
from kiln.core.storage import ObjectInfo, check_key
from kiln.core.workspace import Workspace
from kiln.tracking._base import check_artifact_name
from kiln.tracking._resolve import resolve_run
from kiln.tracking._experiments import _insert
from kiln.tracking._models import ArtifactInfo
from kiln.tracking._tables import artifacts, experiments, runs

__all__ = ["ArtifactService", "referenced_keys"]


def _info(row: Any) -> ArtifactInfo:
    return ArtifactInfo(**{k: getattr(row, k) for k in ArtifactInfo.model_fields})


def referenced_keys(conn: Connection) -> set[str]:
    """Object keys that committed artifacts use (the GC root of ``runs/``)."""
    return {r[0] for r in conn.execute(sa.select(artifacts.c.object_key))}


class ArtifactService:
    """Put, list and read the files of a run."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def _run(self, run_id: str) -> Any:
        """The run's id, status and experiment name; ``run_id`` may be any run reference."""
        with self.ws.db.read() as conn:
            run_id = resolve_run(conn, run_id)
            row = conn.execute(
                sa.select(runs.c.id, runs.c.status, experiments.c.name)
                .select_from(runs.join(experiments, experiments.c.id == runs.c.experiment_id))
                .where(runs.c.id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"run {run_id} does not exist; `kiln runs ls EXPERIMENT` lists runs")
        return row

    def put(
        self,
        *,
        run_id: str,
        name: str,
        data: bytes | None = None,
        file_path: str | os.PathLike[str] | None = None,
        media_type: str = "application/octet-stream",
    ) -> ArtifactInfo:
        """Store ``data`` (or the file at ``file_path``) as artifact ``name`` of a running run.

        Logging a name again replaces it; the old file is left for ``kiln gc``.

        Raises:
            NotFound: no such run.
            Conflict: the run has finished.
            InvalidArgument: the name is not a plain relative path.
        """
        check_artifact_name(name)
        run = self._run(run_id)
        run_id = run.id
        if run.status != "Running":
            raise Conflict(f"run {run_id} is {run.status}; artifacts can only be logged to a running run")
        key = check_key(f"runs/{run_id}/artifacts/{uuid.uuid4().hex[:12]}/{name}")
        if file_path is not None:
            stored: ObjectInfo = self.ws.store.put_file(key, file_path)
        else:
            stored = self.ws.store.put_bytes(key, data or b"")
        row = {
            "run_id": run_id, "name": name, "object_key": key, "media_type": media_type[:128],
            "size": stored.size, "sha256": stored.sha256, "created_at": time.time(),
        }
        resource = f"experiments/{run.name}/runs/{run_id}/artifacts/{name}"
        with self.ws.mutation(self.ctx, action="runs.artifact", resource=resource, details={"size": stored.size}) as (conn, _):
            status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
            if status != "Running":
                raise Conflict(f"run {run_id} is {status}; artifacts can only be logged to a running run")
            ins = _insert(conn)(artifacts)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=["run_id", "name"],
                    set_={c: ins.excluded[c] for c in ("object_key", "media_type", "size", "sha256", "created_at")},
                ).values(**row)
            )
        return ArtifactInfo(**{k: row[k] for k in ArtifactInfo.model_fields})

    def list(self, *, run_id: str) -> list[ArtifactInfo]:
        """A run's artifacts by name."""
        run_id = self._run(run_id).id
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.name)).all()
        return [_info(r) for r in rows]

    def locate(self, *, run_id: str, name: str) -> tuple[ArtifactInfo, str]:
        """An artifact's info and its object key.

        Raises:
            NotFound: no such run or artifact.
        """
        check_artifact_name(name)
        run_id = self._run(run_id).id
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.name == name)).first()
        if row is None:
            raise NotFound(f"run {run_id} has no artifact {name!r}; `kiln runs artifacts {run_id}` lists them")
        return _info(row), row.object_key

    def read(self, *, run_id: str, name: str) -> bytes:
        """The bytes of one artifact."""
        _, key = self.locate(run_id=run_id, name=name)
        return self.ws.store.read_bytes(key)
