"""The feature store's operations, declared once (see :mod:`kiln.core.ops`)."""

from __future__ import annotations

from kiln.core.ops import Operation, declare
from kiln.features._models import BatchGetResult, CompactResult, FeatureGroup, FeatureRecord, IngestResult, RebuildResult, StreamIngestResult, WriteResult
from kiln.lake._models import DatasetVersion

_SVC = "kiln.features._service:FeatureService"
_TRAIN = "kiln.features._training:TrainingSetService"
_GROUP = "/v1/feature-groups/{name}"
_INLINE = "kiln.features._service:reads_inline"  # online reads from a local SQLite store skip the thread pool


def _op(name: str, method: str, path: str, role: str, call: str, response: object, *, service: str = _SVC, **kw: object) -> Operation:
    return Operation(name=f"features.{name}", method=method, path=path, role=role, service=service, call=call, response=response, kind="feature group", **kw)  # type: ignore[arg-type]


ALL = declare(
    _op("create", "POST", "/v1/feature-groups", "editor", "create", FeatureGroup,
        body=("name", "record_id", "event_time", "features", "dataset", "description", "tags", "ttl", "online", "ingest"), status=201),
    _op("list", "GET", "/v1/feature-groups", "viewer", "list", list[FeatureGroup]),
    _op("describe", "GET", "/v1/feature-groups/{ref}", "viewer", "describe", FeatureGroup),
    _op("update", "PATCH", _GROUP, "editor", "update", FeatureGroup, body=("features", "description", "tags", "ttl", "online")),
    _op("delete", "DELETE", _GROUP, "editor", "delete", FeatureGroup),
    _op("ingest", "POST", _GROUP + "/ingest", "editor", "ingest", IngestResult, body=("dataset",)),
    _op("ingest_stream", "POST", _GROUP + "/ingest-stream", "editor", "ingest_stream", StreamIngestResult, body=("stream", "consumer", "max_records")),
    _op("put_records", "POST", _GROUP + "/records", "editor", "put_records", WriteResult, body=("records", "ttl")),
    _op("delete_records", "POST", _GROUP + "/records/delete", "editor", "delete_records", WriteResult, body=("records", "mode")),
    _op("get_record", "GET", _GROUP + "/records/{record_id}", "viewer", "get_record", FeatureRecord, inline=_INLINE),
    _op("compact", "POST", _GROUP + "/compact", "editor", "compact", CompactResult),
    _op("rebuild_online", "POST", _GROUP + "/rebuild-online", "editor", "rebuild_online", RebuildResult),
    _op("batch_get", "POST", "/v1/features/online", "viewer", "batch_get", BatchGetResult, body=("identifiers",), inline=_INLINE,
        summary="BatchGetRecord (the feature server): records of several groups, each with a selection of features."),
    _op("to_dataset", "POST", _GROUP + "/dataset", "editor", "to_dataset", DatasetVersion, service=_TRAIN,
        body=("output_dataset", "n_recent", "as_of", "include_deleted", "start", "end"), status=201),
    _op("training_set", "POST", "/v1/features/training-sets", "editor", "training_set", DatasetVersion, service=_TRAIN,
        body=("entities", "features", "output_dataset", "event_time_column", "as_of", "include_deleted", "start", "end"), status=201),
)
(CREATE, LIST, DESCRIBE, UPDATE, DELETE, INGEST, INGEST_STREAM, PUT_RECORDS, DELETE_RECORDS, GET_RECORD, COMPACT, REBUILD_ONLINE, BATCH_GET, TO_DATASET, TRAINING_SET) = ALL
