"""What an endpoint runs: the spec the service writes and the serving processes read.

The service (trusted Kiln code with the workspace) resolves every model reference,
checks its trust and fetches its verified package into this machine's cache; the spec
then names folders, never registry references, so a serving worker (which runs the
model's code) needs neither the metadata database nor the object store's credentials.
A spec is a JSON file in the endpoint's run folder, one per generation
(``<home>/endpoints/<name>/gen-<n>.json``); the supervisor serves the newest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BatchingSpec",
    "CaptureSpec",
    "EndpointSpec",
    "MultiModelSpec",
    "ServerlessSpec",
    "VariantSpec",
]

MB = 1 << 20


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantSpec(_Spec):
    """One production variant: a verified model package and its share of the traffic."""

    name: str = "AllTraffic"
    model_ref: str = Field(description="name@version, as recorded (for describe, capture and metrics)")
    folder: str = Field(description="the verified package folder in this machine's cache")
    trusted: bool = Field(False, description="whether the package's code may run (decided by the service)")
    trusted_types: tuple[str, ...] = ()
    weight: float = Field(1.0, ge=0)
    fast_path: bool = Field(True, description="use a compiled fast path where one gives the framework's outputs")


class CaptureSpec(_Spec):
    """Data capture (CONTRACTS.md §4)."""

    enabled: bool = False
    percent: float = Field(100.0, ge=0, le=100)
    modes: tuple[Literal["Input", "Output"], ...] = ("Input", "Output")
    # Where finished capture files go, as a store key prefix ("capture/<endpoint>" by default).
    prefix: str = ""
    csv_content_types: tuple[str, ...] = ("text/csv",)
    json_content_types: tuple[str, ...] = ("application/json", "application/jsonlines")


class BatchingSpec(_Spec):
    """Opt-in adaptive micro-batching: requests wait at most ``max_delay_ms`` to share one predict."""

    max_batch: int = Field(32, ge=1, le=4096)
    max_delay_ms: float = Field(2.0, ge=0, le=1000)


class ServerlessSpec(_Spec):
    """Scale to zero: no worker holds the model while idle; a request beyond the limit gets 429."""

    memory_mb: int = Field(2048, ge=128, le=1 << 20)
    max_concurrency: int = Field(5, ge=1, le=1000)
    idle_s: float = Field(300.0, gt=0)


class MultiModelSpec(_Spec):
    """A multi-model endpoint: models chosen per request, loaded on first use, evicted LRU."""

    memory_mb: int = Field(2048, ge=1)
    # The registry model names (or name prefix + '*') this endpoint may load by target model.
    allow: tuple[str, ...] = ("*",)


class EndpointSpec(_Spec):
    name: str
    generation: int = 1
    variants: tuple[VariantSpec, ...] = ()
    shadow: VariantSpec | None = None
    workers: int = Field(1, ge=1, le=64)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    # Host names the endpoint answers to besides loopback and ``host`` (a proxy's, a LAN name).
    allowed_hosts: tuple[str, ...] = ()
    max_payload_bytes: int = Field(6 * MB, ge=1, le=100 * MB)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    capture: CaptureSpec = CaptureSpec()
    batching: BatchingSpec | None = None
    serverless: ServerlessSpec | None = None
    multi_model: MultiModelSpec | None = None
    # The run folder (state, metrics, capture spool); set by whoever writes the spec.
    run_dir: str = ""

    @model_validator(mode="after")
    def _check(self) -> EndpointSpec:
        names = [v.name for v in self.variants] + ([self.shadow.name] if self.shadow else [])
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if self.multi_model is None and not self.variants:
            raise ValueError("an endpoint needs at least one variant (or multi_model)")
        if self.variants and sum(v.weight for v in self.variants) <= 0:
            raise ValueError("the variants' weights add up to 0: no variant would get traffic")
        return self
