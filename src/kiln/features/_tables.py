"""Feature store tables: groups, their versions (feature definitions), the offline store's
committed Parquet files, and stream positions (exactly-once ingestion)."""

import sqlalchemy as sa

from kiln.core.db import metadata

groups = sa.Table(
    "features_groups",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("record_id", sa.String(64), nullable=False),
    sa.Column("event_time", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("ttl_s", sa.Float, nullable=True),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

versions = sa.Table(
    "features_versions",
    metadata,
    sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

files = sa.Table(
    "features_files",
    metadata,
    sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("event_date", sa.String(10), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("min_event", sa.Float, nullable=False),
    sa.Column("max_event", sa.Float, nullable=False),
    sa.Column("max_write", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_features_files_group_date", "group_id", "event_date"),
)

stream_positions = sa.Table(
    "features_stream_positions",
    metadata,
    sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("consumer", sa.String(64), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
