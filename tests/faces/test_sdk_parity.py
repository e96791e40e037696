"""The SDK against a server returns what the in-process SDK returns: same types, same data,
same errors. Both clients work on one workspace, so their answers can be compared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kiln
from kiln.core.auth import NewToken, TokenInfo
from kiln.core.config import Settings
from kiln.core.errors import AlreadyExists, InvalidArgument, KilnError, NotFound, ResourceExhausted
from kiln.core.gc import GcReport
from kiln.core.workspace import Workspace
from kiln.lake import Dataset, DatasetVersion, SqlHistoryEntry
from kiln.lake.sql import QueryResult
from tests.faces.conftest import CSV, SyncASGI

FRAME = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "score": [0.5, 1.5, 2.5], "ok": [True, False, True]})


@pytest.fixture
def pair(settings: Settings, app: Any) -> Iterator[tuple[kiln.Client, kiln.Client]]:
    local = kiln.Client(settings=settings)
    remote = kiln.Client("http://testserver", http_transport=SyncASGI(app))
    assert not local.is_remote and remote.is_remote
    yield local, remote
    local.close()
    remote.close()


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_bytes(CSV)
    return path


def _shape(v: DatasetVersion) -> tuple[Any, ...]:
    return (type(v), v.row_count, [c.model_dump() for c in v.columns], len(v.files), v.source.get("kind"))


@pytest.mark.parametrize("source", ["file", "frame", "arrow"])
def test_ingest_returns_the_same_version(pair: tuple[kiln.Client, kiln.Client], csv_file: Path, source: str) -> None:
    local, remote = pair
    data = {"file": csv_file, "frame": FRAME, "arrow": pa.Table.from_pandas(FRAME, preserve_index=False)}[source]
    a = local.datasets.ingest("here", data)
    b = remote.datasets.ingest("there", data)
    assert isinstance(a, DatasetVersion) and isinstance(b, DatasetVersion)
    assert (a.version, b.version) == (1, 1)
    assert _shape(a)[:4] == _shape(b)[:4]
    assert local.datasets.read("here").equals(remote.datasets.read("there"))


def test_append_and_options(pair: tuple[kiln.Client, kiln.Client], tmp_path: Path) -> None:
    local, remote = pair
    semi = tmp_path / "semi.csv"
    semi.write_text("zip;n\n01234;1\n")
    for client, name in ((local, "l"), (remote, "r")):
        client.datasets.ingest(name, semi, delimiter=";", types={"zip": "varchar"})
        v = client.datasets.ingest(name, semi, append=True, delimiter=";", types={"zip": "varchar"})
        assert (v.version, v.row_count, v.columns[0].type) == (2, 2, "string")
        assert v.lineage["appended_to"] == f"{name}@1"
    assert local.datasets.read("l").equals(remote.datasets.read("r"))


@pytest.fixture
def lake(pair: tuple[kiln.Client, kiln.Client], csv_file: Path) -> tuple[kiln.Client, kiln.Client]:
    local, _ = pair
    local.datasets.ingest("sales", csv_file)
    local.datasets.ingest("sales", FRAME)
    local.datasets.ingest("other", csv_file)
    return pair


@pytest.mark.parametrize(("call", "kind"), [
    (lambda c: c.datasets.list(), list[Dataset]),
    (lambda c: c.datasets.get("sales"), DatasetVersion),
    (lambda c: c.datasets.get("sales@1"), DatasetVersion),
    (lambda c: c.datasets.versions("sales"), list[DatasetVersion]),
    (lambda c: c.datasets.verify("sales@1"), DatasetVersion),
])
def test_reads_are_equal(lake: tuple[kiln.Client, kiln.Client], call: Any, kind: Any) -> None:
    local, remote = lake
    a, b = call(local), call(remote)
    assert a == b
    if isinstance(a, list):
        assert all(isinstance(x, kind.__args__[0]) for x in a + b)
    else:
        assert isinstance(a, kind) and isinstance(b, kind)


@pytest.mark.parametrize("call", [
    lambda c: c.datasets.head("sales@1", n=2),
    lambda c: c.datasets.head("sales", n=0),
    lambda c: c.datasets.read("sales@1"),
    lambda c: c.datasets.read("sales", columns=["name", "id"]),
])
def test_tables_are_equal(lake: tuple[kiln.Client, kiln.Client], call: Any) -> None:
    local, remote = lake
    a, b = call(local), call(remote)
    assert isinstance(a, pa.Table) and isinstance(b, pa.Table)
    assert a.equals(b), (a.schema, b.schema)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "json", "pq", "ndjson"])
def test_export_writes_the_same_file(lake: tuple[kiln.Client, kiln.Client], tmp_path: Path, fmt: str) -> None:
    local, remote = lake
    a = local.datasets.export("sales@1", tmp_path / f"local.{fmt}")
    b = remote.datasets.export("sales@1", tmp_path / f"remote.{fmt}")
    assert isinstance(a, Path) and isinstance(b, Path)
    if fmt in ("parquet", "pq"):
        assert pq.read_table(a).equals(pq.read_table(b))
    else:
        assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".local", ".remote"))) == []


def test_export_expands_home_and_refuses_folders(lake: tuple[kiln.Client, kiln.Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    local, remote = lake
    for client, name in ((local, "l"), (remote, "r")):
        assert client.datasets.export("sales@1", f"~/out/{name}.csv") == tmp_path / "out" / f"{name}.csv"
        with pytest.raises(InvalidArgument, match="is a folder"):
            client.datasets.export("sales@1", tmp_path / "out")
    assert (tmp_path / "out" / "l.csv").read_bytes() == (tmp_path / "out" / "r.csv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["l.csv", "r.csv"]


def test_delete_returns_the_versions(lake: tuple[kiln.Client, kiln.Client], csv_file: Path) -> None:
    local, remote = lake
    assert local.datasets.delete("sales@1") == remote.datasets.delete("other") == [1]
    assert remote.datasets.delete("sales") == [2]
    assert local.datasets.list() == remote.datasets.list() == []


@pytest.mark.parametrize(("query", "limit"), [("SELECT * FROM sales ORDER BY id", None), ('SELECT count(*) AS n FROM "sales@1"', None), ("SELECT * FROM range(10) t(i)", 3)])
def test_sql_is_equal(lake: tuple[kiln.Client, kiln.Client], query: str, limit: int | None) -> None:
    local, remote = lake
    a, b = local.sql(query, limit=limit), remote.sql(query, limit=limit)
    assert isinstance(a, QueryResult) and isinstance(b, QueryResult)
    assert a.table.equals(b.table) and a.truncated == b.truncated == (limit is not None)
    assert a.columns == b.columns and a.rows() == b.rows()
    history = remote.sql_history(limit=5)
    assert all(isinstance(e, SqlHistoryEntry) for e in history) and history[0].query == query


def test_tokens_audit_and_gc(pair: tuple[kiln.Client, kiln.Client]) -> None:
    local, remote = pair
    made = [local.tokens.create("one", role="editor"), remote.tokens.create("two", role="viewer")]
    assert all(type(t) is NewToken and t.token.startswith("kiln_") for t in made)
    assert local.tokens.list() == remote.tokens.list()
    assert all(type(t) is TokenInfo for t in remote.tokens.list())
    revoked = [local.tokens.revoke("two"), remote.tokens.revoke("one")]
    assert all(type(t) is TokenInfo and t.revoked for t in revoked)
    a, b = local.audit.list(limit=10), remote.audit.list(limit=10)
    assert a == b and len(a) == 4 and all(type(e) is dict for e in a)
    assert local.audit.verify() == remote.audit.verify() == {"ok": True, "checked": 4, "first_bad_seq": None, "problem": ""}
    reports = [local.audit.gc(dry_run=True), remote.audit.gc(dry_run=True)]
    assert all(type(r) is GcReport for r in reports) and reports[0] == reports[1]


# (call, error class, same message on both faces: False where FastAPI validates the query itself)
@pytest.mark.parametrize(("call", "cls", "same"), [
    (lambda c, p: c.datasets.get("nope"), NotFound, True),
    (lambda c, p: c.datasets.get("Bad!"), InvalidArgument, True),
    (lambda c, p: c.datasets.get("sales@9"), NotFound, True),
    (lambda c, p: c.datasets.head("sales", n=-1), InvalidArgument, False),
    (lambda c, p: c.datasets.read("sales", columns=["nope"]), InvalidArgument, True),
    (lambda c, p: c.datasets.export("nope", p / "x.csv"), NotFound, True),
    (lambda c, p: c.datasets.export("sales", p / "x.xml"), InvalidArgument, True),
    (lambda c, p: c.datasets.delete("nope"), NotFound, True),
    (lambda c, p: c.datasets.versions("nope"), NotFound, True),
    (lambda c, p: c.sql("DROP VIEW sales"), InvalidArgument, True),
    (lambda c, p: c.sql("SELECT * FROM range(100000000000) a ORDER BY 1 DESC", timeout_s=0.2), ResourceExhausted, True),
    (lambda c, p: c.sql("SELECT 1", limit=-1), InvalidArgument, False),
    (lambda c, p: c.tokens.create("sales-bot", role="root"), InvalidArgument, True),
    (lambda c, p: c.tokens.revoke("ghost"), NotFound, True),
])
def test_errors_are_the_same(lake: tuple[kiln.Client, kiln.Client], tmp_path: Path, call: Any, cls: type[KilnError], same: bool) -> None:
    local, remote = lake
    messages = []
    for client in (local, remote):
        with pytest.raises(KilnError) as info:
            call(client, tmp_path)
        assert type(info.value) is cls, (client, info.value)
        messages.append(info.value.message)
    assert messages[0] == messages[1] or not same
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


def test_verify_refuses_a_tampered_version_on_every_face(lake: tuple[kiln.Client, kiln.Client], ws: Workspace, cli: Any) -> None:
    key = lake[0].datasets.get("sales@1").files[0].key
    assert cli("datasets", "verify", "sales@1").code == 0
    ws.store.put_bytes(key, ws.store.read_bytes(lake[0].datasets.get("sales@2").files[0].key))
    for client in lake:
        with pytest.raises(KilnError, match=f"dataset sales@1 is not what was committed: {key} has"):
            client.datasets.verify("sales@1")
        assert client.datasets.verify("sales@2").version == 2
    result = cli("datasets", "verify", "sales@1")
    assert result.code == 1 and "is not what was committed" in result.err


def test_already_exists_is_not_conflict(pair: tuple[kiln.Client, kiln.Client]) -> None:
    local, remote = pair
    local.tokens.create("dup")
    for client in (local, remote):
        with pytest.raises(AlreadyExists):
            client.tokens.create("dup")
