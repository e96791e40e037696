"""serving: real-time endpoints and their per-variant metric datapoints

Revision ID: serving_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "serving_0001"
down_revision = None
branch_labels = ("serving",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "kiln_endpoints",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("previous_spec", sa.Text),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("failure_reason", sa.Text),
        sa.Column("deadline_at", sa.Float),
        sa.Column("host", sa.String(200)),
        sa.Column("port", sa.Integer),
        sa.Column("url", sa.String(300)),
        sa.Column("supervisor_pid", sa.Integer),
        sa.Column("supervisor_ticks", sa.String(32)),
        sa.Column("supervisor_host", sa.String(200)),
        sa.Column("restarts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "kiln_endpoint_metrics",
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("variant", sa.String(64), primary_key=True),
        sa.Column("at", sa.Float, primary_key=True),
        sa.Column("values", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kiln_endpoint_metrics")
    op.drop_table("kiln_endpoints")
