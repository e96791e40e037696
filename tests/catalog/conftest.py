"""Catalog fixtures: the streams tests' migrated-workspace template and face fixtures."""

from tests.streams.conftest import _migrated, app, cli, http, settings  # noqa: F401
