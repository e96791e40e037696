"""Monitoring tables: monitors (their schedule and baseline), their runs, and ground truth uploads."""

import sqlalchemy as sa

from kiln.core.db import metadata

monitors = sa.Table(
    "monitoring_monitors",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("schedule", sa.String(128), nullable=False),
    # Store prefix of the baseline's statistics.json / constraints.json (model quality: constraints.json).
    sa.Column("baseline_key", sa.String(1024), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    # The next slot the schedule owes (epoch seconds); null for a monitor run only on demand.
    sa.Column("next_slot", sa.Float, nullable=True, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

runs = sa.Table(
    "monitoring_runs",
    metadata,
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
    sa.Column("key", sa.String(1024), nullable=True),  # store prefix of the run's files
    sa.Column("summary", sa.Text, nullable=False),  # a small JSON digest (metrics, faults)
    sa.Index("ix_monitoring_runs_monitor_started", "monitor_id", "started_at"),
)

ground_truth = sa.Table(
    "monitoring_ground_truth",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("monitor_id", sa.String(32), sa.ForeignKey("monitoring_monitors.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)
