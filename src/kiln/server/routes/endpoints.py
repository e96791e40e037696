"""REST: real-time endpoints (``/v1/endpoints``): the declared operations, and invocations.

``POST /v1/endpoints/{name}/invocations`` proxies one request to the endpoint's workers
(the API server loads no model): the caller's role is checked before a byte of the body is
read (:class:`~kiln.server._roles.KilnRoute`), then the body is read up to the endpoint's
own limit (413 beyond, without reading further), and the answer comes back with the
model's content type and SageMaker's headers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from kiln.core.errors import PayloadTooLarge
from kiln.serving import _ops as ops
from kiln.serving._service import EndpointService
from kiln.server._ops import operations_router
from kiln.server._roles import KilnRoute, role
from kiln.server.deps import get_ctx

router = APIRouter(tags=["endpoints"], route_class=KilnRoute)

_HEADERS = {
    "target_model": "x-amzn-sagemaker-target-model",
    "target_variant": "x-amzn-sagemaker-target-variant",
    "inference_id": "x-amzn-sagemaker-inference-id",
    "custom_attributes": "x-amzn-sagemaker-custom-attributes",
}


@router.post(ops.INVOKE_PATH, openapi_extra={
    **role(ops.INVOKE_ROLE, action="endpoints.invoke"),
    "requestBody": {"required": True, "description": "the model's input, in its content type (text/csv, application/json, application/x-npy...)",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
}, responses={200: {"description": "the model's output, in the accepted content type", "content": {"*/*": {}}}})
async def invoke(request: Request, name: str) -> Response:
    """Invoke an endpoint: the body goes to its model, its answer comes back as it is.

    SageMaker's headers pass through: ``X-Amzn-SageMaker-Target-Model``,
    ``-Target-Variant``, ``-Inference-Id``, ``-Custom-Attributes``; the answer names the
    variant that served it in ``X-Amzn-Invoked-Production-Variant``.
    """
    svc = EndpointService(request.app.state.workspace, get_ctx(request))
    limit = await run_in_threadpool(svc.max_payload_bytes, name=name)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over endpoint {name!r}'s limit of {limit / (1 << 20):g} MB")
        chunks.append(chunk)
    extra = {arg: request.headers.get(header) for arg, header in _HEADERS.items()}
    got = await run_in_threadpool(
        svc.invoke, name=name, body=b"".join(chunks), content_type=request.headers.get("content-type"),
        accept=request.headers.get("accept"), request_id=getattr(request.state, "request_id", None), **extra,
    )
    headers = {}
    if got.invoked_variant:
        headers["x-amzn-invoked-production-variant"] = got.invoked_variant
    if got.custom_attributes:
        headers["x-amzn-sagemaker-custom-attributes"] = got.custom_attributes
    return Response(got.body, media_type=got.content_type, headers=headers)


router.include_router(operations_router(ops.ALL, tags=[]))
