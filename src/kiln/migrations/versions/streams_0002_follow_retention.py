"""streams: continuous pulling from the source, and retention (trimmed records, log size)

Revision ID: streams_0002
Revises: streams_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "streams_0002"
down_revision = "streams_0001"
branch_labels = None
depends_on = None

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_COLUMNS = ("follow", "last_pull_at", "last_pull_error", "pull_failures", "retention_s", "retention_bytes", "trimmed_seq", "log_bytes", "last_trim_at")


def upgrade() -> None:
    with op.batch_alter_table("lake_streams") as batch:
        batch.add_column(sa.Column("follow", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("last_pull_at", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_pull_error", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("pull_failures", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("retention_s", sa.Float, nullable=False, server_default=str(7 * 86_400.0)))
        batch.add_column(sa.Column("retention_bytes", _BigInt, nullable=False, server_default="0"))
        batch.add_column(sa.Column("trimmed_seq", _BigInt, nullable=False, server_default="0"))
        batch.add_column(sa.Column("log_bytes", _BigInt, nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_trim_at", sa.Float, nullable=False, server_default="0"))
    # The worker used to pull every stream with a source: those streams keep being pulled.
    op.execute("UPDATE lake_streams SET follow = true WHERE source <> ''")
    op.execute(
        "UPDATE lake_streams SET log_bytes = (SELECT COALESCE(SUM(LENGTH(r.data)), 0) "
        "FROM lake_stream_records r WHERE r.stream_id = lake_streams.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("lake_streams") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
