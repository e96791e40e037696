"""Tuning tables: a tuning job is a job (``kiln_jobs``, kind ``tuning``, its request in the
spec); its trials, one row each, are what a restarted driver rebuilds its study from."""

import sqlalchemy as sa

from kiln.core.db import metadata

trials = sa.Table(
    "kiln_tuning_trials",
    metadata,
    sa.Column("tuning_job", sa.String(64), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    # The training job that runs the trial: <tuning-job>-<nnn>-<hash>, as SageMaker names them.
    sa.Column("job", sa.String(64), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    # What the strategy sampled (JSON), and the hyperparameters the trial was given.
    sa.Column("sampled", sa.Text, nullable=False),
    sa.Column("hyperparameters", sa.Text, nullable=False),
    sa.Column("objective", sa.Float),
    # The objective's values per step, as read from the trial's log (JSON list).
    sa.Column("intermediate", sa.Text, nullable=False, server_default="[]"),
    sa.Column("early_stopped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("failure_reason", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
)
