"""registry: who trusted a model version's code to run on the server

Revision ID: registry_0002
Revises: registry_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kiln_model_versions") as batch:
        batch.add_column(sa.Column("trusted_by", sa.String(128)))
        batch.add_column(sa.Column("trusted_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("kiln_model_versions") as batch:
        batch.drop_column("trusted_at")
        batch.drop_column("trusted_by")
