"""tuning: the trials of tuning jobs (the jobs themselves are kiln_jobs rows of kind tuning)

Revision ID: tuning_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "tuning_0001"
down_revision = None
branch_labels = ("tuning",)
depends_on = "jobs_0001"


def upgrade() -> None:
    op.create_table(
        "kiln_tuning_trials",
        sa.Column("tuning_job", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("job", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sampled", sa.Text, nullable=False),
        sa.Column("hyperparameters", sa.Text, nullable=False),
        sa.Column("objective", sa.Float),
        sa.Column("intermediate", sa.Text, nullable=False, server_default="[]"),
        sa.Column("early_stopped", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failure_reason", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("kiln_tuning_trials")
