"""Job tables: one record per job of any kind, and its log lines.

Logs live in the metadata database: the runner appends batches of lines while
the job runs, wherever it runs (a local process or a Ray worker), and every
face reads them from one place, by sequence number, while the job is running.
"""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

jobs = sa.Table(
    "kiln_jobs",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("failure_reason", sa.Text),
    sa.Column("executor", sa.String(200), nullable=False),
    sa.Column("handle", sa.String(200), nullable=False, server_default=""),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("time_limit_s", sa.Float),
    sa.Column("stop_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("run_id", sa.String(32)),
    sa.Column("outputs", sa.Text, nullable=False, server_default="{}"),
    sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
    sa.Column("host", sa.String(200)),
    sa.Column("pid", sa.Integer),
    # The user process group the runner started, killed too when the runner is found dead.
    sa.Column("pgid", sa.Integer),
    sa.Column("log_lines", _BigInt, nullable=False, server_default="0"),
    sa.Column("log_bytes", _BigInt, nullable=False, server_default="0"),
)

job_logs = sa.Table(
    "kiln_job_logs",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("seq", _BigInt, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# Functions (Lambda): one row per version; a version never changes what it runs (its code,
# handler, limits and environment), so a call in flight on version N is never affected by
# an update, which adds version N + 1. Only the description is edited in place.
functions = sa.Table(
    "kiln_functions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", _BigInt, primary_key=True, autoincrement=False),
    sa.Column("handler", sa.String(300), nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("timeout_s", sa.Float, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("environment", sa.Text, nullable=False, server_default="{}"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)
