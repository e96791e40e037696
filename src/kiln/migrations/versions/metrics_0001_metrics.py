"""metrics: metric series with per-minute and hourly rows, alarms and their history, endpoint log lines

Revision ID: metrics_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "metrics_0001"
down_revision = None
branch_labels = ("metrics",)
depends_on = "core_0001"

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "kiln_metric_series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dims", sa.Text, nullable=False),
        sa.Column("dims_hash", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(32)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_at", sa.Float, nullable=False),
        sa.UniqueConstraint("namespace", "name", "dims_hash", name="uq_kiln_metric_series"),
    )
    op.create_table(
        "kiln_metric_points",
        sa.Column("series_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("resolution", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bucket", _BigInt, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Float, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("sketch", sa.Text, nullable=False),
    )
    op.create_table(
        "kiln_metric_cursors",
        sa.Column("source", sa.String(300), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_table(
        "kiln_alarms",
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
    op.create_table(
        "kiln_alarm_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alarm", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("old_state", sa.String(24)),
        sa.Column("new_state", sa.String(24)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_table(
        "kiln_log_lines",
        sa.Column("source", sa.String(80), primary_key=True),
        sa.Column("seq", _BigInt, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("kiln_log_lines", "kiln_alarm_history", "kiln_alarms", "kiln_metric_cursors", "kiln_metric_points", "kiln_metric_series"):
        op.drop_table(table)
