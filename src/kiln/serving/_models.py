"""Pydantic models of endpoints: what the service takes and returns, and every face shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kiln.tracking._base import KilnModel

__all__ = [
    "ENDPOINT_STATES",
    "BatchingRequest",
    "MultiModelRequest",
    "ServerlessRequest",
    "CaptureRequest",
    "Endpoint",
    "EndpointState",
    "EndpointMetric",
    "EndpointVariant",
    "Invocation",
    "VariantRequest",
]

EndpointState = Literal["Creating", "InService", "Updating", "Failed", "Deleting"]
ENDPOINT_STATES: tuple[str, ...] = ("Creating", "InService", "Updating", "Failed", "Deleting")


class VariantRequest(BaseModel):
    """One production variant as asked for: a name, a model reference and a traffic weight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("AllTraffic", description="the variant's name (SageMaker's VariantName)")
    model: str = Field(description="a model reference: name, name@3 or name@alias")
    weight: float = Field(1.0, ge=0, le=1e6, description="its share of the traffic, relative to the others")


class CaptureRequest(BaseModel):
    """Data capture as asked for (CONTRACTS.md §4); off when ``percent`` is 0."""

    model_config = ConfigDict(extra="forbid")

    percent: float = Field(0.0, ge=0, le=100, description="the share of requests captured, in percent")
    modes: list[Literal["Input", "Output"]] = Field(default_factory=lambda: ["Input", "Output"])


class ServerlessRequest(BaseModel):
    """Serverless inference (SageMaker's ServerlessConfig): scale to zero when idle, a concurrency limit."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(2048, ge=128, le=1 << 20, description="the worker's address-space limit, in MB (SageMaker's MemorySizeInMB)")
    max_concurrency: int = Field(5, ge=1, le=1000, description="requests answered at once; more get 429 (ThrottlingException)")
    idle_timeout_s: float = Field(300.0, gt=0, le=86400, description="seconds without a request before the worker is released")


class BatchingRequest(BaseModel):
    """Adaptive micro-batching: concurrent requests share one predict."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(32, ge=1, le=4096, description="flush once this many rows wait")
    max_delay_ms: float = Field(2.0, ge=0, le=1000, description="the longest a request waits for others")


class MultiModelRequest(BaseModel):
    """A multi-model endpoint: registered models chosen per request by X-Amzn-SageMaker-Target-Model."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int = Field(2048, ge=1, le=1 << 20, description="the budget of loaded models' package sizes, in MB; least recently used go first")
    allow: list[str] = Field(default_factory=lambda: ["*"], description="the model names (or name prefixes ending in '*') it may load")


class EndpointVariant(KilnModel):
    """A variant as it serves: the model version its reference resolved to."""

    name: str
    model: str = Field(description="name@version, resolved when the generation was written")
    weight: float
    trusted: bool = Field(False, description="whether the package's own code runs (decided by the server's settings and the version's trust)")
    shadow: bool = False


class Endpoint(KilnModel):
    """A real-time endpoint: its state, where it answers, and what it serves."""

    name: str
    state: EndpointState
    failure_reason: str | None = None
    generation: int
    url: str | None = None
    host: str | None = None
    port: int | None = None
    variants: list[EndpointVariant] = Field(default_factory=list)
    shadow: EndpointVariant | None = None
    workers: int = 1
    timeout_s: float = 60.0
    max_payload_mb: float = 6.0
    capture: dict[str, Any] = Field(default_factory=dict)
    serverless: dict[str, Any] | None = None
    batching: dict[str, Any] | None = None
    multi_model: dict[str, Any] | None = None
    restarts: int = Field(0, description="how often the watcher restarted its processes (a crash, a server restart)")
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str

    @property
    def ready(self) -> bool:
        return self.state in ("InService", "Updating")


class EndpointMetric(KilnModel):
    """One datapoint of a variant's counters (cumulative since its workers started):
    invocations, 4xx, 5xx, latencies, cold starts, as the serving processes count them."""

    endpoint: str
    variant: str
    at: float
    values: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    """One invocation's answer: the body as the model encoded it, and which variant answered."""

    body: bytes
    content_type: str
    invoked_variant: str | None = None
    custom_attributes: str | None = None
    request_id: str | None = None

    def decoded(self) -> Any:
        """The body as JSON."""
        import orjson

        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")
