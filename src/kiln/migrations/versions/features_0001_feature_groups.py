"""features: feature groups, their versions, offline files, stream positions

Revision ID: features_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "features_0001"
down_revision = None
branch_labels = ("features",)
depends_on = "lake_0001"

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "features_groups",
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
    op.create_table(
        "features_versions",
        sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "features_files",
        sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event_date", sa.String(10), nullable=False),
        sa.Column("rows", _BigInt, nullable=False),
        sa.Column("bytes", _BigInt, nullable=False),
        sa.Column("min_event", sa.Float, nullable=False),
        sa.Column("max_event", sa.Float, nullable=False),
        sa.Column("max_write", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_features_files_group_date", "features_files", ["group_id", "event_date"])
    op.create_table(
        "features_stream_positions",
        sa.Column("group_id", sa.String(32), sa.ForeignKey("features_groups.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("last_seq", _BigInt, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("features_stream_positions")
    op.drop_index("ix_features_files_group_date", "features_files")
    op.drop_table("features_files")
    op.drop_table("features_versions")
    op.drop_table("features_groups")
