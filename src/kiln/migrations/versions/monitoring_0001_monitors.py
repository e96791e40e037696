"""monitoring: monitors, their runs, ground truth uploads

Revision ID: monitoring_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "monitoring_0001"
down_revision = None
branch_labels = ("monitoring",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "monitoring_monitors",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("schedule", sa.String(128), nullable=False),
        sa.Column("baseline_key", sa.String(1024), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("next_slot", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_monitoring_monitors_next_slot", "monitoring_monitors", ["next_slot"])
    op.create_table(
        "monitoring_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("monitor_id", sa.String(32), sa.ForeignKey("monitoring_monitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled_for", sa.Float, nullable=True),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("window_end", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("violations", sa.Integer, nullable=False),
        sa.Column("drift", sa.Boolean, nullable=False),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("key", sa.String(1024), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_index("ix_monitoring_runs_monitor_started", "monitoring_runs", ["monitor_id", "started_at"])
    op.create_table(
        "monitoring_ground_truth",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("monitor_id", sa.String(32), sa.ForeignKey("monitoring_monitors.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_monitoring_ground_truth_monitor_id", "monitoring_ground_truth", ["monitor_id"])


def downgrade() -> None:
    op.drop_index("ix_monitoring_ground_truth_monitor_id", "monitoring_ground_truth")
    op.drop_table("monitoring_ground_truth")
    op.drop_index("ix_monitoring_runs_monitor_started", "monitoring_runs")
    op.drop_table("monitoring_runs")
    op.drop_index("ix_monitoring_monitors_next_slot", "monitoring_monitors")
    op.drop_table("monitoring_monitors")
