"""Endpoint tables: one row per endpoint (its desired spec and what runs it), and the
per-variant metric datapoints the watcher persists from the workers' counters."""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

endpoints = sa.Table(
    "kiln_endpoints",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # The EndpointSpec (kiln.serving._spec) of the newest generation written, as JSON.
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    # While Updating: the spec that still serves, restored if the new generation fails.
    sa.Column("previous_spec", sa.Text),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("failure_reason", sa.Text),
    # Creating / Updating end Failed (or roll back) when not ready by then.
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

endpoint_metrics = sa.Table(
    "kiln_endpoint_metrics",
    metadata,
    sa.Column("endpoint", sa.String(64), primary_key=True),
    sa.Column("variant", sa.String(64), primary_key=True),
    sa.Column("at", sa.Float, primary_key=True),
    # Cumulative counters as the workers report them (summed over workers), one JSON object:
    # invocations, 4xx, 5xx, model/overhead latency sums and counts, cold starts.
    sa.Column("values", sa.Text, nullable=False),
)
