"""lake: datasets, versions, files, SQL history

Revision ID: lake_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "lake_0001"
down_revision = None
branch_labels = ("lake",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "lake_datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
    )
    op.create_table(
        "lake_dataset_versions",
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
    op.create_table(
        "lake_dataset_files",
        sa.Column("version_id", sa.String(32), sa.ForeignKey("lake_dataset_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_lake_dataset_files_key", "lake_dataset_files", ["key"])
    op.create_table(
        "lake_sql_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("elapsed_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_lake_sql_history_time", "lake_sql_history", ["time"])


def downgrade() -> None:
    op.drop_table("lake_sql_history")
    op.drop_table("lake_dataset_files")
    op.drop_table("lake_dataset_versions")
    op.drop_table("lake_datasets")
