"""Profiles: the data quality and insights report of a dataset version, stored with it."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kiln.core.context import Context
from kiln.core.errors import InvalidArgument, KilnError, NotFound
from kiln.core.names import check_name, parse_ref
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService, DatasetVersion
from kiln.prep import _tables as t
from kiln.prep._models import ProfileInfo, ProfileReport

__all__ = ["ProfileService", "referenced_keys"]

MAX_TARGET_CHARS = 256


def _info(row: Any) -> ProfileInfo:
    return ProfileInfo(
        id=row.id, dataset=row.dataset, version=row.version, target=row.target, rows=row.rows,
        columns=row.columns, alerts=row.alerts, html_key=row.html_key, json_key=row.json_key,
        created_at=row.created_at, created_by=row.created_by,
    )


class ProfileService:
    """Profile dataset versions and find their reports again."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    def create(self, ref: str, *, target: str | None = None) -> ProfileInfo:
        """Profile a version in one streaming pass and store the HTML and JSON reports with it.

        Args:
            ref: ``name`` (latest version) or ``name@3``.
            target: a column to predict; adds insights (problem type, feature power,
                possible leakage, outliers).

        Raises:
            NotFound: no such dataset or version.
            InvalidArgument: ``target`` is not a column of the version.
        """
        name = parse_ref(ref, kind="dataset").name if isinstance(ref, str) else str(ref)
        try:
            self.ctx.require("editor")
            _check_target(target)
            version = DatasetService(self.ws, self.ctx).get(ref)
            html_key, json_key, document = self._write(version, target)
        except KilnError as exc:
            self.ws.audit_failure(self.ctx, action="profiles.create", resource=f"profiles/{name}", error=exc)
            raise
        now = time.time()
        row = {
            "id": uuid.uuid4().hex, "dataset": version.name, "version": version.version,
            "dataset_created_at": version.created_at, "target": target,
            "rows": int(document["overview"]["rows"]), "columns": int(document["overview"]["columns"]),
            "alerts": len(document["alerts"]), "html_key": html_key, "json_key": json_key,
            "created_at": now, "created_by": self.ctx.actor,
        }
        with self.ws.mutation(self.ctx, action="profiles.create", resource=f"profiles/{version.name}", details={"version": version.version, "target": target}) as (conn, details):
            conn.execute(t.profiles.insert().values(**row))
            details["alerts"] = row["alerts"]
        return ProfileInfo(**{k: v for k, v in row.items() if k != "dataset_created_at"})

    def _write(self, version: DatasetVersion, target: str | None) -> tuple[str, str, dict[str, Any]]:
        """Compute the report and put both files in the store (not yet visible)."""
        names = [c.name for c in version.columns]
        if target is not None and target not in names:
            raise InvalidArgument(f"target {target!r} is not a column of {version.ref}; columns are {', '.join(names)}")
        from kiln.prep.report import profile

        data = DatasetService(self.ws, self.ctx).arrow_dataset(version.ref)  # streamed in batches
        result = profile(data, title=version.ref, target=target)
        document = result.to_json()
        prefix = f"profiles/{version.name}/{uuid.uuid4().hex}"
        self.ws.store.put_bytes(f"{prefix}/profile.html", result.to_html().encode())
        self.ws.store.put_bytes(f"{prefix}/profile.json", orjson.dumps(document))
        return f"{prefix}/profile.html", f"{prefix}/profile.json", document

    # -- reading -------------------------------------------------------------------------

    def get(self, ref: str) -> ProfileInfo:
        """The latest profile of the version ``ref`` names (``name`` means its latest version)."""
        self.ctx.require("viewer")
        version = DatasetService(self.ws, self.ctx).get(ref)
        with self.ws.db.read() as conn:
            row = conn.execute(self._of(version).order_by(t.profiles.c.created_at.desc()).limit(1)).first()
            if row is None:
                older = conn.execute(
                    sa.select(t.profiles.c.version).where(t.profiles.c.dataset == version.name).order_by(t.profiles.c.version.desc()).limit(1)
                ).scalar()
        if row is None:
            hint = f" ({version.name}@{older} has one: `kiln profile show {version.name}@{older}`)" if older is not None and older != version.version else ""
            raise NotFound(f"{version.ref} has no profile yet; run `kiln profile {version.ref}`{hint}")
        return _info(row)

    def get_report(self, ref: str) -> ProfileReport:
        """The latest profile of a version: its metadata and JSON document (overview, columns, alerts, insights).

        Raises:
            NotFound: no such dataset or version, or it has no profile yet.
        """
        info = self.get(ref)
        return ProfileReport(info=info, profile=self.read(info, format="json"))

    def list(self, name: str) -> list[ProfileInfo]:
        """Every profile of every current version of dataset ``name``, newest first."""
        self.ctx.require("viewer")
        check_name(name, kind="dataset")
        current = {(v.version, v.created_at) for v in DatasetService(self.ws, self.ctx).versions(name)}
        with self.ws.db.read() as conn:
            rows = conn.execute(sa.select(t.profiles).where(t.profiles.c.dataset == name).order_by(t.profiles.c.created_at.desc())).all()
        return [_info(r) for r in rows if (r.version, r.dataset_created_at) in current]

    def report(self, ref: str, *, format: Literal["html", "json"] = "json") -> Any:
        """The latest profile's report: HTML bytes, or the JSON document as a dict."""
        if format not in ("html", "json"):
            raise InvalidArgument(f"unknown report format {format!r}: use html or json")
        info = self.get(ref)
        return self.read(info, format=format)

    def read(self, info: ProfileInfo, *, format: Literal["html", "json"] = "json") -> Any:
        data = self.ws.store.read_bytes(info.html_key if format == "html" else info.json_key)
        return data if format == "html" else orjson.loads(data)

    def _of(self, version: DatasetVersion) -> Any:
        return sa.select(t.profiles).where(
            t.profiles.c.dataset == version.name,
            t.profiles.c.version == version.version,
            t.profiles.c.dataset_created_at == version.created_at,
        )


def _check_target(target: object) -> None:
    if target is None:
        return
    if not isinstance(target, str) or not 1 <= len(target) <= MAX_TARGET_CHARS:
        raise InvalidArgument(f"target must be a column name of 1 to {MAX_TARGET_CHARS} characters, or left out for no insights")


def referenced_keys(conn: Connection) -> set[str]:
    """Report files of profiles whose dataset version still exists (for ``kiln gc``)."""
    from kiln.lake import _tables as lt

    q = (
        sa.select(t.profiles.c.html_key, t.profiles.c.json_key)
        .join(lt.datasets, lt.datasets.c.name == t.profiles.c.dataset)
        .join(lt.versions, sa.and_(
            lt.versions.c.dataset_id == lt.datasets.c.id,
            lt.versions.c.version == t.profiles.c.version,
            lt.versions.c.created_at == t.profiles.c.dataset_created_at,
        ))
    )
    return {key for row in conn.execute(q) for key in row}
