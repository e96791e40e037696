"""SDK: real-time endpoints (``client.endpoints``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.core.errors import error_from_payload
from kiln.serving import _ops as ops
from kiln.serving._models import Endpoint, EndpointMetric, Invocation
from kiln.sdk._base import Namespace, seg

__all__ = ["Endpoints"]

_WAITING = ("Creating", "Updating", "Deleting")


def _variants(variants: Sequence[Any] | Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """Variants as dicts: ``[{"name", "model", "weight"}]``, ``VariantRequest``s, or ``{name: (model, weight)}``."""
    if variants is None:
        return None
    if isinstance(variants, Mapping):
        out = []
        for name, value in variants.items():
            model, weight = (value, 1.0) if isinstance(value, str) else tuple(value)
            out.append({"name": name, "model": model, "weight": float(weight)})
        return out
    return [v.model_dump() if hasattr(v, "model_dump") else dict(v) for v in variants]


class Endpoints(Namespace):
    """``client.endpoints``: create, update, describe, list, delete and invoke real-time endpoints."""

    def create(
        self,
        name: str,
        *,
        model: str | None = None,
        variants: Sequence[Any] | Mapping[str, Any] | None = None,
        shadow: Mapping[str, Any] | None = None,
        workers: int = 1,
        port: int = 0,
        capture_percent: float = 0.0,
        capture_modes: Sequence[str] | None = None,
        timeout_s: float = 60.0,
        max_payload_mb: float = 6.0,
        serverless: Mapping[str, Any] | None = None,
        batching: Mapping[str, Any] | None = None,
        multi_model: Mapping[str, Any] | None = None,
        wait: bool = True,
        wait_timeout_s: float | None = 300.0,
    ) -> Endpoint:
        """Create an endpoint serving ``model`` (or weighted ``variants``); with ``wait``,
        return once it is InService (or Failed: check ``state`` and ``failure_reason``).

        ``serverless={"memory_mb", "max_concurrency", "idle_timeout_s"}`` scales it to zero
        when idle; ``batching={"max_batch", "max_delay_ms"}`` turns on micro-batching;
        ``multi_model={"memory_mb", "allow"}`` makes a multi-model endpoint (no ``model``)."""
        ep: Endpoint = self._call(
            ops.CREATE, name=name, model=model, variants=_variants(variants), shadow=dict(shadow) if shadow else None, workers=workers,
            port=port, capture_percent=capture_percent, capture_modes=list(capture_modes) if capture_modes else None,
            timeout_s=timeout_s, max_payload_mb=max_payload_mb, serverless=dict(serverless) if serverless is not None else None,
            batching=dict(batching) if batching is not None else None, multi_model=dict(multi_model) if multi_model is not None else None,
        )
        return self.wait(name, timeout_s=wait_timeout_s) if wait else ep

    def update(
        self,
        name: str,
        *,
        model: str | None = None,
        variants: Sequence[Any] | Mapping[str, Any] | None = None,
        shadow: Mapping[str, Any] | None = None,
        remove_shadow: bool = False,
        workers: int | None = None,
        capture_percent: float | None = None,
        capture_modes: Sequence[str] | None = None,
        timeout_s: float | None = None,
        max_payload_mb: float | None = None,
        batching: Mapping[str, Any] | None = None,
        remove_batching: bool = False,
        wait: bool = True,
        wait_timeout_s: float | None = 300.0,
    ) -> Endpoint:
        """Serve new models or settings, blue/green; with ``wait``, return once the new
        generation serves (or the update rolled back: ``failure_reason`` says why)."""
        ep: Endpoint = self._call(
            ops.UPDATE, name=name, model=model, variants=_variants(variants), shadow=dict(shadow) if shadow else None,
            remove_shadow=remove_shadow, workers=workers, capture_percent=capture_percent,
            capture_modes=list(capture_modes) if capture_modes else None, timeout_s=timeout_s, max_payload_mb=max_payload_mb,
            batching=dict(batching) if batching is not None else None, remove_batching=remove_batching,
        )
        return self.wait(name, timeout_s=wait_timeout_s) if wait else ep

    def get(self, name: str) -> Endpoint:
        return self._call(ops.GET, name=name)  # type: ignore[no-any-return]

    def list(self, *, state: str | None = None) -> list[Endpoint]:
        return self._call(ops.LIST, state=state)  # type: ignore[no-any-return]

    def delete(self, name: str) -> Endpoint:
        """Delete an endpoint and stop every process it started."""
        return self._call(ops.DELETE, name=name)  # type: ignore[no-any-return]

    def metrics(self, name: str, *, since: float | None = None, limit: int = 1000) -> list[EndpointMetric]:
        """Persisted metric datapoints per variant, oldest first."""
        return self._call(ops.METRICS, name=name, since=since, limit=limit)  # type: ignore[no-any-return]

    def wait(self, name: str, *, timeout_s: float | None = 300.0, poll_s: float = 0.5) -> Endpoint:
        """Wait until the endpoint is no longer Creating or Updating.

        Raises:
            TimeoutError: ``timeout_s`` passed first (the endpoint goes on starting).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pause = 0.05
        while True:
            ep = self.get(name)
            if ep.state not in _WAITING:
                return ep
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"endpoint {name} is still {ep.state} after {timeout_s:g} s")
            time.sleep(pause)
            pause = min(pause * 1.5, poll_s)

    def invoke(
        self,
        name: str,
        body: bytes | str,
        *,
        content_type: str | None = "application/json",
        accept: str | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
    ) -> Invocation:
        """Send ``body`` to the endpoint's model (SageMaker's InvokeEndpoint); the answer's
        ``body`` is the model's output in ``content_type``, ``invoked_variant`` who served it.
        On a multi-model endpoint ``target_model`` names the model: ``name@version``,
        SageMaker's ``name/version``, or ``name`` (its latest version when first loaded)."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        args = {"target_model": target_model, "target_variant": target_variant, "inference_id": inference_id, "custom_attributes": custom_attributes}
        if self._local:
            from kiln.serving._service import EndpointService

            return self._svc(EndpointService).invoke(name=name, body=data, content_type=content_type, accept=accept, **args)
        from kiln.core.names import check_name

        check_name(name, kind="endpoint")
        headers = {"content-type": content_type or "application/json"}
        if accept:
            headers["accept"] = accept
        for arg, header in (("target_model", "x-amzn-sagemaker-target-model"), ("target_variant", "x-amzn-sagemaker-target-variant"),
                            ("inference_id", "x-amzn-sagemaker-inference-id"), ("custom_attributes", "x-amzn-sagemaker-custom-attributes")):
            if args[arg] is not None:
                headers[header] = str(args[arg])
        resp = self._raw("POST", f"/v1/endpoints/{seg(name)}/invocations", content=data, headers=headers)
        return Invocation(
            body=resp.content, content_type=resp.headers.get("content-type", "application/octet-stream"),
            invoked_variant=resp.headers.get("x-amzn-invoked-production-variant"),
            custom_attributes=resp.headers.get("x-amzn-sagemaker-custom-attributes"), request_id=resp.headers.get("x-request-id"),
        )

    def _raw(self, method: str, path: str, *, content: bytes, headers: dict[str, str]) -> Any:
        """One request whose answer is kept as it is (bytes and headers), errors as KilnErrors."""
        import httpx

        from kiln.core.errors import Unavailable
        from kiln.sdk._base import HttpTransport, _check_path

        t = self._t
        assert isinstance(t, HttpTransport)
        _check_path(path)
        try:
            resp = t._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the Kiln server at {t.base_url}: {exc}") from None
        if resp.status_code >= 300:
            try:
                payload = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
            except ValueError:
                payload = resp.text
            raise error_from_payload(payload, resp.status_code)
        return resp


