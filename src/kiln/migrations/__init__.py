"""Alembic migrations of the metadata database, one branch per stage."""

# What alembic_version holds once every branch is at its head (a head that another
# branch depends on, like lake_0001, is implied and not listed), so that opening a
# workspace whose schema is current reads one table instead of loading Alembic and
# every migration script. A new migration updates this set; a test in
# tests/contract/test_metadata_store.py checks it against what Alembic writes.
HEADS = frozenset({"core_0002", "features_0001", "jobs_0002", "metrics_0001", "monitoring_0001", "prep_0001", "registry_0002", "serving_0001", "streams_0002", "tracking_0001", "tuning_0001"})
