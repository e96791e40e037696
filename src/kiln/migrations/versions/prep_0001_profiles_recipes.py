"""prep: dataset profiles, recipes, recipe versions and fitted states

Revision ID: prep_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "prep_0001"
down_revision = None
branch_labels = ("prep",)
depends_on = "lake_0001"

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "prep_profiles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("dataset_created_at", sa.Float, nullable=False),
        sa.Column("target", sa.String(256)),
        sa.Column("rows", _BigInt, nullable=False),
        sa.Column("columns", sa.Integer, nullable=False),
        sa.Column("alerts", sa.Integer, nullable=False),
        sa.Column("html_key", sa.String(400), nullable=False),
        sa.Column("json_key", sa.String(400), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_prep_profiles_dataset_version", "prep_profiles", ["dataset", "version"])
    op.create_table(
        "prep_recipes",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "prep_recipe_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "prep_recipe_fits",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("recipe", sa.String(64), nullable=False),
        sa.Column("recipe_version", sa.Integer, nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("dataset_created_at", sa.Float, nullable=False),
        sa.Column("fitted_key", sa.String(400), nullable=False),
        sa.Column("output", sa.String(80)),
        sa.Column("rows_in", _BigInt, nullable=False),
        sa.Column("rows_out", _BigInt, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_prep_recipe_fits_recipe", "prep_recipe_fits", ["recipe", "recipe_version"])
    op.create_index("ix_prep_recipe_fits_dataset", "prep_recipe_fits", ["dataset", "dataset_version"])


def downgrade() -> None:
    op.drop_table("prep_recipe_fits")
    op.drop_table("prep_recipe_versions")
    op.drop_table("prep_recipes")
    op.drop_table("prep_profiles")
