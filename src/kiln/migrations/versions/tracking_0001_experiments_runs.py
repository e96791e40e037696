"""tracking: experiments, runs, params, tags, metric history (chunked), latest metrics, artifacts

Revision ID: tracking_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "tracking_0001"
down_revision = None
branch_labels = ("tracking",)
depends_on = "core_0001"

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "kiln_experiments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "kiln_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_run_id", sa.String(32)),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("start_time", sa.Float, nullable=False),
        sa.Column("end_time", sa.Float),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("failure_reason", sa.Text),
    )
    op.create_index("ix_kiln_runs_experiment_id", "kiln_runs", ["experiment_id"])
    op.create_index("ix_kiln_runs_parent_run_id", "kiln_runs", ["parent_run_id"])
    op.create_index("ix_kiln_runs_start_time", "kiln_runs", ["start_time"])
    for table in ("kiln_run_params", "kiln_run_tags"):
        op.create_table(
            table,
            sa.Column("run_id", sa.String(32), primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
    op.create_table(
        "kiln_metric_chunks",
        sa.Column("id", _BigInt, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("min_step", _BigInt, nullable=False),
        sa.Column("max_step", _BigInt, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_kiln_metric_chunks_run_key", "kiln_metric_chunks", ["run_id", "key"])
    op.create_table(
        "kiln_latest_metrics",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("step", _BigInt, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_kiln_latest_metrics_key_value", "kiln_latest_metrics", ["key", "value"])
    op.create_table(
        "kiln_run_artifacts",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("object_key", sa.String(400), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("size", _BigInt, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "kiln_run_artifacts", "kiln_latest_metrics", "kiln_metric_chunks", "kiln_run_tags",
        "kiln_run_params", "kiln_runs", "kiln_experiments",
    ):
        op.drop_table(table)
