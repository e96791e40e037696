"""Metric, alarm and log tables.

Metrics: a series is (namespace, name, exact dimensions); each has one row per minute
(``resolution`` 60) and one per hour (3600) holding count, sum, min, max and a quantile
sketch, both written in the same transaction as the data they fold in, so a roll-up is
never behind its minutes. Alarms: one row each, and their history. Logs: endpoint log lines
copied from the endpoint's log file (job logs stay in the jobs stage's own table), and
cursors of what each collector has already read.
"""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

series = sa.Table(
    "kiln_metric_series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # Canonical JSON of the dimensions (sorted keys) and its sha256, which the unique key uses.
    sa.Column("dims", sa.Text, nullable=False),
    sa.Column("dims_hash", sa.String(64), nullable=False),
    sa.Column("unit", sa.String(32)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.UniqueConstraint("namespace", "name", "dims_hash", name="uq_kiln_metric_series"),
)

points = sa.Table(
    "kiln_metric_points",
    metadata,
    sa.Column("series_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("resolution", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bucket", _BigInt, primary_key=True, autoincrement=False),
    sa.Column("count", sa.Float, nullable=False),
    sa.Column("sum", sa.Float, nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("sketch", sa.Text, nullable=False),
)

cursors = sa.Table(
    "kiln_metric_cursors",
    metadata,
    sa.Column("source", sa.String(300), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)

alarms = sa.Table(
    "kiln_alarms",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("state_updated_at", sa.Float, nullable=False),
    sa.Column("evaluated_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

alarm_history = sa.Table(
    "kiln_alarm_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alarm", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("old_state", sa.String(24)),
    sa.Column("new_state", sa.String(24)),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
)

log_lines = sa.Table(
    "kiln_log_lines",
    metadata,
    sa.Column("source", sa.String(80), primary_key=True),
    sa.Column("seq", _BigInt, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
)
