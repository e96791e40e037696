"""Kiln: a local-first machine-learning platform."""

from typing import Any

__version__ = "0.1.0"

__all__ = ["Client", "Run", "__version__", "load_run"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import kiln` stays cheap for the CLI and for jobs.
    if name == "Client":
        from kiln.sdk.client import Client

        return Client
    if name in ("Run", "load_run"):
        from kiln.sdk import run

        return getattr(run, name)
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")
