"""The streams' operations, declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.lake.streams._models import Consumer, FlushResult, PullResult, PutResult, ReadResult, Stream, TrimResult

_SVC = "kiln.lake.streams._service:StreamService"
_ONE = "/v1/streams/{name}"
_CONSUMER = _ONE + "/consumers/{consumer}"


def _op(name: str, method: str, path: str, role: str, call: str, response: object, **kw: object) -> Operation:
    return Operation(name=f"streams.{name}", method=method, path=path, role=role, service=_SVC, call=call, response=response, kind="stream", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("create", "POST", "/v1/streams", "editor", "create", Stream, status=201,
        body=("name", "dataset", "columns", "source", "follow", "flush_rows", "flush_interval_s", "retention_s", "retention_bytes", "description")),
    _op("list", "GET", "/v1/streams", "viewer", "list", list[Stream]),
    _op("get", "GET", _ONE, "viewer", "get", Stream),
    _op("delete", "DELETE", _ONE, "editor", "delete", Stream),
    _op("update", "PATCH", _ONE, "editor", "update", Stream,
        body=("follow", "flush_rows", "flush_interval_s", "retention_s", "retention_bytes", "description")),
    _op("follow", "POST", _ONE + "/follow", "editor", "set_follow", Stream, fixed={"follow": True},
        summary="Have the server's worker pull the stream's source continuously."),
    _op("unfollow", "POST", _ONE + "/unfollow", "editor", "set_follow", Stream, fixed={"follow": False},
        summary="Stop the server's continuous pull of the stream's source."),
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
    _op("trim", "POST", _ONE + "/trim", "editor", "trim", TrimResult),
)
(CREATE, LIST, GET, DELETE, UPDATE, FOLLOW, UNFOLLOW, PUT, READ, CONSUMERS, CREATE_CONSUMER, GET_CONSUMER,
 DELETE_CONSUMER, READ_CONSUMER, COMMIT, FLUSH, PULL, TRIM) = ALL
