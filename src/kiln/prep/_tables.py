"""Prep tables: dataset profiles, recipes, their immutable versions and fitted states."""

import sqlalchemy as sa

from kiln.core.db import metadata

_BigInt = sa.BigInteger().with_variant(sa.Integer, "sqlite")

profiles = sa.Table(
    "prep_profiles",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # The profiled version's created_at: a dataset deleted and made again reuses version
    # numbers, and a profile must not attach itself to the newcomer.
    sa.Column("dataset_created_at", sa.Float, nullable=False),
    sa.Column("target", sa.String(256)),
    sa.Column("rows", _BigInt, nullable=False),
    sa.Column("columns", sa.Integer, nullable=False),
    sa.Column("alerts", sa.Integer, nullable=False),
    sa.Column("html_key", sa.String(400), nullable=False),
    sa.Column("json_key", sa.String(400), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Index("ix_prep_profiles_dataset_version", "dataset", "version"),
)

recipes = sa.Table(
    "prep_recipes",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

recipe_versions = sa.Table(
    "prep_recipe_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
)

recipe_fits = sa.Table(
    "prep_recipe_fits",
    metadata,
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
    sa.Index("ix_prep_recipe_fits_recipe", "recipe", "recipe_version"),
    sa.Index("ix_prep_recipe_fits_dataset", "dataset", "dataset_version"),
)
