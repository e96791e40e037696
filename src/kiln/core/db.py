"""Metadata store: SQLAlchemy Core over SQLite (WAL) or PostgreSQL, Alembic migrations.

Every stage declares its tables on :data:`metadata` in its own ``_tables.py`` and
owns an Alembic branch (``branch_labels=("<stage>",)``) under ``kiln/migrations``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from kiln.core.errors import InvalidArgument, Unavailable

__all__ = ["Database", "metadata", "normalise_url"]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_MIGRATIONS = "kiln:migrations"


def normalise_url(url: str) -> str:
    """Map user-facing URLs to SQLAlchemy ones (``postgresql://`` uses psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith("sqlite://") or url.startswith("postgresql+"):
        return url
    raise InvalidArgument(
        f"unsupported database URL {url!r}: use sqlite:///path/kiln.db or "
        "postgresql://user@host:5432/db"
    )


class Database:
    """One engine, write and read transactions, and migrations."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            path = self.url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(
                self.url, connect_args={"timeout": 60, "check_same_thread": False}
            )
            _configure_sqlite(self.engine)
        else:
            try:
                import psycopg  # noqa: F401
            except ImportError:  # pragma: no cover - depends on extras
                raise InvalidArgument(
                    "PostgreSQL needs the postgres extra: pip install 'kiln[postgres]'"
                ) from None
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=5)
        self._migrated = False
        self._lock = threading.Lock()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A read-write transaction; on SQLite it takes the write lock up front."""
        with self._connect() as conn:
            conn = conn.execution_options(kiln_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def raw_write(self) -> Iterator[Any]:
        """A DBAPI cursor inside one write transaction, for a hot path that runs a few fixed
        statements many times a second (SQLAlchemy's execution layer costs about 150 µs a
        transaction). The same transaction as :meth:`write`: on SQLite it takes the write lock
        up front; it commits when the block ends and rolls back on any exception. The
        statements are in the driver's own parameter style (``?`` for SQLite, ``%s`` for
        psycopg) and its own exceptions come through unwrapped.
        """
        try:
            dbapi = self.engine.raw_connection()
        except OperationalError as exc:
            raise Unavailable(
                f"cannot reach the metadata database ({self.dialect}): {exc.orig}; "
                "check KILN_DATABASE_URL, or run `kiln doctor`"
            ) from None
        try:
            cur = dbapi.cursor()
            try:
                if self.dialect == "sqlite":
                    cur.execute("BEGIN IMMEDIATE")  # psycopg opens its transaction on the first statement
                yield cur
            except BaseException:
                dbapi.rollback()
                raise
            else:
                dbapi.commit()
            finally:
                cur.close()
        finally:
            dbapi.close()  # back to the pool

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise Unavailable(
                f"cannot reach the metadata database ({self.dialect}): {exc.orig}; "
                "check KILN_DATABASE_URL, or run `kiln doctor`"
            ) from None
        with conn:
            yield conn

    # -- migrations -------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", _MIGRATIONS)
        cfg.attributes["connection"] = conn
        return cfg

    def heads(self) -> set[str]:
        from alembic.script import ScriptDirectory

        with self.read() as conn:
            return set(ScriptDirectory.from_config(self._alembic_config(conn)).get_heads())

    def current(self) -> set[str]:
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())

    def pending(self) -> set[str]:
        """Revisions not yet applied (empty when the schema is current)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.read() as conn:
            script = ScriptDirectory.from_config(self._alembic_config(conn))
            current = MigrationContext.configure(conn).get_current_heads()
        everything = {r.revision for r in script.iterate_revisions("heads", "base")}
        applied = {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
        return everything - applied

    def migrate(self, target: str = "heads") -> None:
        """Upgrade the schema to ``target`` (all branch heads by default), once per process."""
        with self._lock:
            if target == "heads" and (self._migrated or self._at_heads()):
                self._migrated = True
                return
            from alembic import command

            with self.write() as conn:
                if self.dialect == "postgresql":
                    # Two processes starting at once must not both create tables.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(74213)"))
                command.upgrade(self._alembic_config(conn), target)
            if target == "heads":
                self._migrated = True

    def _at_heads(self) -> bool:
        """Whether the schema is already at every head: one cheap read, no Alembic."""
        from kiln.migrations import HEADS

        try:
            with self.read() as conn:
                current = {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
        except sa.exc.DBAPIError:  # no alembic_version yet: a new database
            return False
        return current == HEADS

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("kiln_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def migrations_path() -> Path:
    return Path(str(resources.files("kiln") / "migrations"))
