"""Jobs: one record and state machine for every kind, executors (local, Ray), processing
jobs and functions."""

from typing import Any

__all__ = [
    "Capabilities",
    "Executor",
    "Function",
    "FunctionService",
    "JOB_KINDS",
    "JOB_STATES",
    "Job",
    "JobLogs",
    "JobService",
    "Launch",
    "open_executor",
    "register_executor",
]

# Imported on first use, so that a function's worker process, which imports
# kiln.jobs._function_worker alone, starts without the database layer.
_WHERE = {
    "Capabilities": "kiln.jobs._base", "Executor": "kiln.jobs._base", "Launch": "kiln.jobs._base",
    "open_executor": "kiln.jobs._base", "register_executor": "kiln.jobs._base",
    "JOB_KINDS": "kiln.jobs._models", "JOB_STATES": "kiln.jobs._models", "Job": "kiln.jobs._models",
    "JobLogs": "kiln.jobs._models", "Function": "kiln.jobs._models",
    "JobService": "kiln.jobs._service", "FunctionService": "kiln.jobs._functions",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln.jobs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def _referenced_keys(conn: Any) -> set[str]:
    """What under ``jobs/`` is live: code archives a job or function version names, and
    every recorded job's own folder (checkpoints, output data). An archive uploaded for a
    request that was then refused is garbage once ``kiln gc``'s grace period has passed."""
    import orjson
    import sqlalchemy as sa

    from kiln.jobs import _tables as t

    live: set[str] = set()
    for name, spec in conn.execute(sa.select(t.jobs.c.name, t.jobs.c.spec)):
        live.add(f"jobs/{name}/")
        code = orjson.loads(spec).get("code")
        if code:
            live.add(f"jobs/code/{code}.tar.gz")
    for (sha,) in conn.execute(sa.select(t.functions.c.code_sha256)):
        live.add(f"jobs/code/{sha}.tar.gz")
    return live


def _register_gc_root() -> None:
    from kiln.core.gc_roots import register_gc_root

    register_gc_root("jobs/", _referenced_keys)


_register_gc_root()
