"""Feature store: feature groups, an offline store (Parquet), online stores (SQLite, Redis,
PostgreSQL), point-in-time training sets."""
