"""The streams' operations, declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.lake.streams._models import Consumer, FlushResult, PullResult, PutResult, ReadResult, Stream

_SVC = "kiln.lake.streams._service:StreamService"
_ONE = "/v1/streams/{name}"
_CONSUMER = _ONE + "/consumers/{consumer}"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"streams.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="stream", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("create", "POST", "/v1/streams", "editor", "create", Stream, status=201,
        body=("name", "dataset", "columns", "source", "flush_rows", "flush_interval_s", "description")),
    _op("list", "GET", "/v1/streams", "viewer", "list", list[Stream]),
    _op("get", "GET", _ONE, "viewer", "get", Stream),
    _op("delete", "DELETE", _ONE, "editor", "delete", Stream),
    _op("put", "POST", _ONE + "/records", "editor", "put_records", PutResult, body=("records",),
        summary="Append a batch of JSON objects; the answer comes once the batch is committed (durable)."),
    _op("read", "GET", _ONE + "/records", "viewer", "read", ReadResult,
        summary="Read from a position without a consumer (nothing is claimed)."),
    _op("consumers", "GET", _ONE + "/consumers", "viewer", "consumers", list[Consumer]),
    _op("create_consumer", "POST", _ONE + "/consumers", "editor", "create_consumer", Consumer, status=201,
        body=("consumer", "position", "sequence_number")),
    _op("get_consumer", "GET", _CONSUMER, "viewer", "get_consumer", Consumer),
    _op("delete_consumer", "DELETE", _CONSUMER, "editor", "delete_consumer", Consumer),
    _op("read_consumer", "POST", _CONSUMER + "/read", "editor", "read_consumer", ReadResult,
        body=("limit", "position", "sequence_number", "lease_s"),
        summary="Claim the next records for a named consumer; commit the returned lease when done."),
    _op("commit", "POST", _CONSUMER + "/commit", "editor", "commit", Consumer, body=("lease",)),
    _op("flush", "POST", _ONE + "/flush", "editor", "flush", FlushResult),
    _op("pull", "POST", _ONE + "/pull", "editor", "pull", PullResult, body=("max_messages", "timeout_s"),
        summary="Pull once from the stream's NATS source."),
)
(CREATE, LIST, GET, DELETE, PUT, READ, CONSUMERS, CREATE_CONSUMER, GET_CONSUMER, DELETE_CONSUMER,
 READ_CONSUMER, COMMIT, FLUSH, PULL) = ALL
