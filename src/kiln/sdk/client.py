"""``kiln.Client``: the SDK face, in-process or against a server."""

from __future__ import annotations

from typing import Any

from kiln.core.config import Settings, load_settings
from kiln.core.context import Context, local_context
from kiln.sdk._base import HttpTransport, LocalTransport, Transport
from kiln.sdk.datasets import Datasets
from kiln.sdk.system import Audit, Tokens

__all__ = ["Client"]


class Client:
    """Entry point of the SDK.

    ``Client()`` works in-process on the workspace the settings name
    (``KILN_HOME``, ``KILN_DATABASE_URL``, ...). ``Client("http://host:8300",
    token=...)`` talks to a server and returns the same types.

    Args:
        url: a Kiln server's base URL; default ``KILN_URL`` or in-process.
        token: bearer token for the server; default ``KILN_TOKEN``, else, for a server on
            loopback (``localhost``, ``127.0.0.1``, ``[::1]``), the admin token that
            ``kiln server`` wrote to ``KILN_HOME/server-token`` (this client's KILN_HOME),
            if there is one.
        settings: explicit settings for the in-process case.
        home: shortcut for ``settings=load_settings(home=...)``.
    """

    def __init__(self, url: str | None = None, *, token: str | None = None, settings: Settings | None = None, home: str | None = None, context: Context | None = None, http_transport: Any = None) -> None:
        if settings is None:
            settings = load_settings(home=home) if home else load_settings()
        self.settings = settings
        url = url if url is not None else settings.url
        if url:
            if token is None:
                token = settings.token or _local_token(url, settings)
            self._t: Transport = HttpTransport(url, token=token, transport=http_transport)
        else:
            from kiln.core.workspace import Workspace

            self._t = LocalTransport(Workspace(settings), context or local_context())
        self.datasets = Datasets(self._t)
        self.tokens = Tokens(self._t)
        self.audit = Audit(self._t)

    def __getattr__(self, attr: str) -> Any:
        # Stage namespaces attach on first use: a command that lists datasets does not
        # import tracking, the registry, streams, the catalog or prep.
        for name, module, cls in _STAGE_NAMESPACES:
            if name == attr and "_t" in self.__dict__:
                import importlib

                namespace = getattr(importlib.import_module(module), cls)(self._t)
                setattr(self, attr, namespace)
                return namespace
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    @property
    def is_remote(self) -> bool:
        return not self._t.is_local

    @property
    def workspace(self) -> Any:
        """The in-process workspace (None when talking to a server)."""
        return self._t.workspace if isinstance(self._t, LocalTransport) else None

    def sql(self, query: str, *, limit: int | None = None, timeout_s: float | None = None) -> Any:
        """Run read-only SQL over the lake; returns a :class:`kiln.lake.QueryResult`."""
        from kiln.sdk.sql import run_sql

        return run_sql(self._t, query, limit=limit, timeout_s=timeout_s)

    def sql_history(self, *, limit: int = 50) -> list[Any]:
        """Past queries, newest first (yours, or everyone's for an admin)."""
        from kiln.sdk.sql import sql_history

        return sql_history(self._t, limit=limit)

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._t.base_url if isinstance(self._t, HttpTransport) else str(self.settings.home)
        return f"Client({where!r})"


def _local_token(url: str, settings: Settings) -> str:
    """The token file of a server on this machine, for a loopback URL; "" otherwise."""
    from urllib.parse import urlsplit

    from kiln.core.auth import is_loopback, read_local_token

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return read_local_token(settings.home) if is_loopback(host) else ""


# (attribute, module, class) - one line per stage namespace; later stages add theirs here.
_STAGE_NAMESPACES: list[tuple[str, str, str]] = [
    ("experiments", "kiln.sdk.tracking", "Experiments"),
    ("runs", "kiln.sdk.tracking", "Runs"),
    ("evaluations", "kiln.sdk.tracking", "Evaluations"),
    ("models", "kiln.sdk.registry", "Models"),
    ("streams", "kiln.sdk.streams", "Streams"),
    ("catalog", "kiln.sdk.catalog", "Catalog"),
    ("recipes", "kiln.sdk.prep", "Recipes"),
    ("jobs", "kiln.sdk.jobs", "Jobs"),
    ("processing", "kiln.sdk.jobs", "Processing"),
    ("training", "kiln.sdk.training", "Training"),
    ("tuning", "kiln.sdk.tuning", "Tuning"),
    ("functions", "kiln.sdk.functions", "Functions"),
    ("transform", "kiln.sdk.transform", "Transform"),
    ("monitoring", "kiln.sdk.monitoring", "Monitoring"),
    ("endpoints", "kiln.sdk.endpoints", "Endpoints"),
    ("features", "kiln.sdk.features", "Features"),
    ("metrics", "kiln.sdk.metrics", "Metrics"),
    ("alarms", "kiln.sdk.metrics", "Alarms"),
    ("logs", "kiln.sdk.metrics", "Logs"),
    ("automl", "kiln.sdk.automl", "AutoML"),
]
