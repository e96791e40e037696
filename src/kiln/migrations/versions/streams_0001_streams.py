"""streams: streams, the durable record log, consumers and their leases

Revision ID: streams_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "streams_0001"
down_revision = None
branch_labels = ("streams",)
depends_on = "lake_0001"

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "lake_streams",
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
    )
    op.create_table(
        "lake_stream_records",
        sa.Column("stream_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", _BigInt, primary_key=True, autoincrement=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lake_stream_consumers",
        sa.Column("stream_id", sa.Integer, sa.ForeignKey("lake_streams.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("checkpoint", _BigInt, nullable=False),
        sa.Column("claimed", _BigInt, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "lake_stream_leases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("stream_id", sa.Integer, sa.ForeignKey("lake_streams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("first_seq", _BigInt, nullable=False),
        sa.Column("last_seq", _BigInt, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_lake_stream_leases_consumer", "lake_stream_leases", ["stream_id", "consumer"])
    op.create_table(
        "lake_stream_source_seqs",
        sa.Column("stream_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source_seq", _BigInt, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("lake_stream_source_seqs")
    op.drop_table("lake_stream_leases")
    op.drop_table("lake_stream_consumers")
    op.drop_table("lake_stream_records")
    op.drop_table("lake_streams")
