"""Stream tables: streams, their record log, named consumers and their leases.

The record log lives in the metadata database on purpose: a record is
acknowledged once its transaction commits, so "acknowledged" means "durable"
on SQLite (WAL) and PostgreSQL alike.
"""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

streams = sa.Table(
    "lake_streams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("flush_rows", _BigInt, nullable=False),
    sa.Column("flush_interval_s", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("last_seq", _BigInt, nullable=False),
    sa.Column("flushed_seq", _BigInt, nullable=False),
    sa.Column("last_flush_at", sa.Float, nullable=False),
    sa.Column("flush_owner", sa.String(128), nullable=False),
    sa.Column("flush_until", sa.Float, nullable=False),
    # Continuous pulling from the source (streams_0002): the worker pulls streams that follow.
    sa.Column("follow", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("last_pull_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("last_pull_error", sa.Text, nullable=False, server_default=""),
    sa.Column("pull_failures", sa.Integer, nullable=False, server_default="0"),
    # Retention (streams_0002): records up to trimmed_seq are gone; log_bytes is the kept records' size.
    sa.Column("retention_s", sa.Float, nullable=False, server_default=str(7 * 86_400.0)),
    sa.Column("retention_bytes", _BigInt, nullable=False, server_default="0"),
    sa.Column("trimmed_seq", _BigInt, nullable=False, server_default="0"),
    sa.Column("log_bytes", _BigInt, nullable=False, server_default="0"),
    sa.Column("last_trim_at", sa.Float, nullable=False, server_default="0"),
)

records = sa.Table(
    "lake_stream_records",
    metadata,
    sa.Column("stream_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", _BigInt, primary_key=True, autoincrement=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

consumers = sa.Table(
    "lake_stream_consumers",
    metadata,
    sa.Column("stream_id", sa.Integer, sa.ForeignKey("lake_streams.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("checkpoint", _BigInt, nullable=False),
    sa.Column("claimed", _BigInt, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

leases = sa.Table(
    "lake_stream_leases",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("stream_id", sa.Integer, sa.ForeignKey("lake_streams.id", ondelete="CASCADE"), nullable=False),
    sa.Column("consumer", sa.String(64), nullable=False),
    sa.Column("first_seq", _BigInt, nullable=False),
    sa.Column("last_seq", _BigInt, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_lake_stream_leases_consumer", "stream_id", "consumer"),
)

# Upstream (NATS JetStream) sequences already appended, so a redelivered message
# is skipped; entries at or below the upstream ack floor are pruned.
source_seqs = sa.Table(
    "lake_stream_source_seqs",
    metadata,
    sa.Column("stream_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source_seq", _BigInt, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)
