"""core: the audit trail moves to keyed MACs (HMAC-SHA256) and an anchor outside the database

Adds ``kiln_audit_head.scheme``. An empty trail starts keyed at once; a trail with
events stays 'sha256' until a workspace opens it with the key, verifies the old
chain with the old digest and writes a MACed ``audit.upgrade`` event that pins it
(see :mod:`kiln.core.audit`). The migration itself cannot see the key, which lives
outside the database on purpose.

Revision ID: core_0002
Revises: core_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kiln_audit_head") as batch:
        batch.add_column(sa.Column("scheme", sa.String(16), nullable=False, server_default="sha256"))
    op.execute("UPDATE kiln_audit_head SET scheme = 'hmac-sha256' WHERE seq = 0")


def downgrade() -> None:
    with op.batch_alter_table("kiln_audit_head") as batch:
        batch.drop_column("scheme")
