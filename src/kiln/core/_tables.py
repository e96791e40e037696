"""Core tables: API tokens and the audit trail (``hash``/``prev_hash`` hold HMAC-SHA256 MACs)."""

import sqlalchemy as sa

from kiln.core.db import metadata

tokens = sa.Table(
    "kiln_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
)

audit_events = sa.Table(
    "kiln_audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(128), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource", sa.String(300), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "kiln_audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # "hmac-sha256"; "sha256" for a trail made before core_0002, until it is carried over.
    sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256"),
)
