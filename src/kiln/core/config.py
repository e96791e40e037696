"""Settings: environment variables first, then ``kiln.toml``, then defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kiln.core.errors import InvalidArgument

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Everything Kiln reads from its environment.

    Every field can be set as ``KILN_<FIELD>`` (upper case) or as a key of
    ``kiln.toml`` (in the working directory, or the file named by ``KILN_CONFIG``).
    """

    home: Path = Path(".kiln")
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str = ""
    executor: str = "local"
    host: str = "127.0.0.1"
    port: int = 8300
    # Require API tokens; `kiln server` writes a local admin token to KILN_HOME/server-token.
    auth: bool = True
    url: str = ""
    token: str = ""
    sql_timeout_s: float = 60.0
    sql_max_rows: int = 1_000_000
    max_request_mb: float = 6.0
    max_upload_mb: float = 2048.0
    ingest_memory_mb: int = 512
    # Security (issue 8). Comma-separated extra names the server answers to, besides loopback.
    allowed_hosts: str = ""
    # Key of the audit trail's MAC; empty: a key file in KILN_HOME, made at init (owner-only).
    audit_key: str = ""
    # Whether model code (pickles, code/inference.py) may run: "trusted" (versions an admin
    # trusted), or "never".
    model_code: str = "trusted"
    # Time limit of one call into a model worker process.
    worker_timeout_s: float = 300.0
    # Jobs (issue 10): how many run at once on this machine (0: one per CPU); the rest wait Pending.
    jobs_max_concurrent: int = 0
    # Whether users' code runs here at all (training and processing jobs, functions): "on" or "off".
    user_code: str = "on"
    # Functions (issue 10): calls of one function that run at once in this process (each in a
    # warm worker); a call waits at most functions_queue_s for one to end, then is refused
    # (429); a worker idle for functions_idle_s is stopped.
    functions_concurrency: int = 4
    functions_queue_s: float = 10.0
    functions_idle_s: float = 300.0
    # Feature store (issue 12): the online store, sqlite:///path (default KILN_HOME/online.db),
    # redis://host:6379/0 or postgresql://user@host/db.
    online_store_url: str = ""
    # Metrics, alarms and logs (issue 13): per-minute metric rows are kept metrics_raw_days,
    # hourly roll-ups metrics_hourly_days, endpoint and job log lines logs_retention_days;
    # the server collects, evaluates alarms and enforces retention every metrics_interval_s.
    # Webhook actions: an editor may name only hosts listed in alarm_webhook_hosts
    # (comma-separated); an admin any http(s) host but link-local ones.
    metrics_raw_days: float = 15.0
    metrics_hourly_days: float = 455.0
    logs_retention_days: float = 30.0
    metrics_interval_s: float = 60.0
    alarm_webhook_hosts: str = ""
    alarm_webhook_timeout_s: float = 5.0
    source_file: str = field(default="", compare=False)

    def resolved(self) -> Settings:
        home = self.home.expanduser().absolute()
        database_url = self.database_url or f"sqlite:///{home / 'kiln.db'}"
        storage_url = self.storage_url or str(home / "objects")
        return _replace(self, home=home, database_url=database_url, storage_url=storage_url)

    def public(self) -> dict[str, Any]:
        """Settings safe to print: secrets masked."""
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        for secret in ("token", "audit_key"):
            if data.get(secret):
                data[secret] = "***"
        data["database_url"] = _mask_password(data["database_url"])
        data["online_store_url"] = _mask_password(data["online_store_url"])
        return data


def _replace(settings: Settings, **changes: Any) -> Settings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values.update(changes)
    return Settings(**values)


def _mask_password(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def _coerce(name: str, raw: Any, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(text)
        if kind is Path:
            return Path(str(raw))
        return kind(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"setting {name} has an invalid value {raw!r}: expected {kind.__name__}"
        ) from None


_TYPES: dict[str, type] = {
    "home": Path,
    "port": int,
    "auth": bool,
    "sql_timeout_s": float,
    "sql_max_rows": int,
    "max_request_mb": float,
    "max_upload_mb": float,
    "ingest_memory_mb": int,
    "worker_timeout_s": float,
    "jobs_max_concurrent": int,
    "functions_concurrency": int,
    "functions_queue_s": float,
    "functions_idle_s": float,
    "metrics_raw_days": float,
    "metrics_hourly_days": float,
    "logs_retention_days": float,
    "metrics_interval_s": float,
    "alarm_webhook_timeout_s": float,
}


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``kiln.toml`` and ``KILN_*`` variables; ``overrides`` win."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_path = Path(env.get("KILN_CONFIG", "kiln.toml"))
    source = ""
    if config_path.is_file():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{config_path} is not valid TOML: {exc}") from None
        section = data.get("kiln", data)
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise InvalidArgument(
                f"{config_path} has unknown settings {unknown}; known: {sorted(known)}"
            )
        values.update(section)
        source = str(config_path)
    for f in fields(Settings):
        key = f"KILN_{f.name.upper()}"
        if key in env:
            values[f.name] = env[key]
    if not values.get("s3_endpoint_url") and env.get("AWS_ENDPOINT_URL"):
        values["s3_endpoint_url"] = env["AWS_ENDPOINT_URL"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    typed = {
        name: _coerce(name, raw, _TYPES.get(name, str))
        for name, raw in values.items()
        if name != "source_file"
    }
    return Settings(**typed, source_file=source).resolved()
