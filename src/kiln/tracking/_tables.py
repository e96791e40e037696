"""Tracking tables: experiments, runs, params, tags, metrics (history + latest), artifacts.

In ``kiln_latest_metrics`` a value of SQL NULL means NaN: SQLite cannot store NaN (it turns it into
NULL on insert), so both backends store it the same way, and a comparison on a
NaN metric is false on both.
"""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

experiments = sa.Table(
    "kiln_experiments",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

runs = sa.Table(
    "kiln_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.String(32), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("parent_run_id", sa.String(32), index=True),
    sa.Column("source", sa.String(300), nullable=False, default=""),
    sa.Column("start_time", sa.Float, nullable=False, index=True),
    sa.Column("end_time", sa.Float),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("failure_reason", sa.Text),
)

run_params = sa.Table(
    "kiln_run_params",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_tags = sa.Table(
    "kiln_run_tags",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# The full history, in chunks: one row per (run, key) per flush, holding packed
# little-endian arrays (float64 values, int64 steps, float64 timestamps). Logging
# costs one row per key per flush instead of one per point, and a history read
# is one indexed range scan.
metric_chunks = sa.Table(
    "kiln_metric_chunks",
    metadata,
    sa.Column("id", _BigInt, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("min_step", _BigInt, nullable=False),
    sa.Column("max_step", _BigInt, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_kiln_metric_chunks_run_key", "run_id", "key"),
)

# The last value of each metric per run, kept per flush: what search reads.
latest_metrics = sa.Table(
    "kiln_latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Float),
    sa.Column("step", _BigInt, nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Index("ix_kiln_latest_metrics_key_value", "key", "value"),
)

artifacts = sa.Table(
    "kiln_run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("object_key", sa.String(400), nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("size", _BigInt, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
