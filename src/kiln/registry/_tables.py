"""Registry tables: models, their immutable versions, and aliases."""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

models = sa.Table(
    "kiln_models",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# A version's files never change; its manifest (kiln-model.json, hashes included)
# is kept here, so a loader checks the stored files against the database's copy.
model_versions = sa.Table(
    "kiln_model_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("prefix", sa.String(200), nullable=False),
    sa.Column("size", _BigInt, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(32), index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("status_updated_at", sa.Float),
    sa.Column("status_updated_by", sa.String(128)),
    sa.Column("status_comment", sa.Text),
    # Who trusted the package's code (pickles, code/inference.py) to run on the server.
    sa.Column("trusted_by", sa.String(128)),
    sa.Column("trusted_at", sa.Float),
)

model_aliases = sa.Table(
    "kiln_model_aliases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
