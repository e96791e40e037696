"""Lake tables: datasets, their immutable versions and files, SQL history."""

import sqlalchemy as sa

from kiln.core.db import metadata

datasets = sa.Table(
    "lake_datasets",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
)

versions = sa.Table(
    "lake_dataset_versions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("lake_datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("byte_size", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("lineage", sa.Text, nullable=False),
    sa.UniqueConstraint("dataset_id", "version", name="uq_lake_dataset_versions_dataset_version"),
)

files = sa.Table(
    "lake_dataset_files",
    metadata,
    sa.Column("version_id", sa.String(32), sa.ForeignKey("lake_dataset_versions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

sql_history = sa.Table(
    "lake_sql_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("elapsed_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
)
