from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kiln.core.errors import InvalidArgument, KilnError, NotFound
from kiln.core.workspace import Workspace
from kiln.lake import DatasetService, IngestOptions

ROWS = [{"id": 1, "city": "Oslo", "temp": 3.5}, {"id": 2, "city": "Lima", "temp": 19.0}, {"id": 3, "city": None, "temp": None}]


@pytest.fixture
def svc(any_ws: Workspace, ctx) -> DatasetService:
    return DatasetService(any_ws, ctx)


def _write(tmp_path: Path, kind: str) -> Path:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"data.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif kind == "json":
        path.write_text(json.dumps(ROWS))
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif kind == "parquet":
        frame.to_parquet(path)
    elif kind == "xlsx":
        frame.to_excel(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["csv", "tsv", "json", "jsonl", "parquet", "xlsx"])
def test_ingest_each_file_format(svc: DatasetService, tmp_path: Path, kind: str) -> None:
    version = svc.ingest("weather", _write(tmp_path, kind))
    assert (version.version, version.row_count) == (1, 3)
    table = svc.read_table("weather").to_pandas()
    assert table["city"].tolist()[:2] == ["Oslo", "Lima"] and table["temp"].isna().tolist() == [False, False, True]
    assert {c.name for c in version.columns} == {"id", "city", "temp"}
    for f in version.files:
        assert len(f.sha256) == 64 and f.bytes > 0
    assert version.byte_size == sum(f.bytes for f in version.files)


@pytest.mark.parametrize("make", [pd.DataFrame, pl.DataFrame, pa.Table.from_pylist], ids=["pandas", "polars", "arrow"])
def test_ingest_in_memory_tables(svc: DatasetService, make) -> None:
    version = svc.ingest("mem", make(ROWS))
    assert version.row_count == 3 and version.source["kind"] == "arrow"
    assert svc.head("mem", n=1).to_pylist() == [ROWS[0]]


def test_csv_options_delimiter_quote_encoding_nulls_skip(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes("junk line\nname;note;n\n'Zoë';'a;b';NA\n'Åsa';'c';7\n".encode("latin-1"))
    version = svc.ingest("odd", path, options=IngestOptions(format="csv", delimiter=";", quote="'", encoding="latin-1", null_values=["NA"], skip_rows=1))
    assert svc.read_table("odd").to_pylist() == [{"name": "Zoë", "note": "a;b", "n": None}, {"name": "Åsa", "note": "c", "n": 7}]
    assert version.source["options"]["delimiter"] == ";"


def test_csv_without_header_and_type_override(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "zips.csv"
    path.write_text("01234,5\n99999,6\n")
    svc.ingest("zips", path, options=IngestOptions(header=False, types={"column0": "varchar"}))
    assert svc.read_table("zips").column("column0").to_pylist() == ["01234", "99999"]


def test_ragged_csv_names_the_line_and_commits_nothing(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n" + "".join(f"{i},{i},x\n" for i in range(50)) + "1,2,3,4\n" + "9,9,z\n")
    with pytest.raises(InvalidArgument, match=r"line 52 has 4 columns, expected 3") as err:
        svc.ingest("ragged", path)
    assert err.value.details["line"] == 52
    assert svc.list() == []
    assert svc.ws.store.list("datasets") == [], "a failed ingest removes its own files"
    if svc.ws.store.capabilities.local_paths:
        assert not (Path(svc.ws.store.url) / "datasets" / "ragged").exists(), "and its folders"
    with pytest.raises(NotFound):
        svc.get("ragged")


def test_ragged_row_beyond_the_sniff_sample(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(30000)) + "1,2,3\n")
    with pytest.raises(InvalidArgument, match="line 30002"):
        svc.ingest("late", path)
    assert svc.list() == []


def test_bad_value_beyond_the_sample_suggests_a_type_override(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text("n\n" + "".join(f"{i}\n" for i in range(30000)) + "oops\n")
    with pytest.raises(InvalidArgument, match="--type"):
        svc.ingest("typed", path)
    svc.ingest("typed", path, options=IngestOptions(types={"n": "varchar"}))
    assert svc.get("typed").row_count == 30001


@pytest.mark.parametrize(("content", "opts", "needle"), [
    (b"x", IngestOptions(format="csv", encoding="ebcdic"), "unsupported encoding"),
    (b"[1, 2", IngestOptions(format="json"), "cannot ingest"),
    (b"PAR1garbage", IngestOptions(format="parquet"), "cannot ingest"),
    (b"a,b\n1,2\n", IngestOptions(types={"zz": "int"}), "unknown columns"),
    (b"a,b\n1,2\n", IngestOptions(types={"a": "int; drop table x"}), "unknown type"),
])
def test_malformed_inputs_are_clear_errors(svc: DatasetService, tmp_path: Path, content: bytes, opts: IngestOptions, needle: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidArgument, match=needle):
        svc.ingest("bad", path, options=opts)
    assert svc.list() == []


@pytest.mark.parametrize(("source", "err"), [("/no/such/file.csv", NotFound), ("data.unknown", InvalidArgument), ("http://example.com/x.csv", InvalidArgument), ("ftp://x/y", InvalidArgument), ("gopher://x", InvalidArgument)])
def test_unusable_sources(svc: DatasetService, tmp_path: Path, source: str, err: type) -> None:
    if source == "data.unknown":
        (tmp_path / source).write_text("?")
        source = str(tmp_path / source)
    with pytest.raises(err):
        svc.ingest("x", source)


def test_folder_and_glob(svc: DatasetService, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        pd.DataFrame({"part": [i] * 4, "v": range(4)}).to_csv(folder / f"p{i}.csv", index=False)
    assert svc.ingest("folder", folder).row_count == 12
    assert svc.ingest("glob", str(folder / "p[01].csv")).row_count == 8
    with pytest.raises(NotFound):
        svc.ingest("none", str(folder / "*.parquet"))


def test_database_query_source(svc: DatasetService, tmp_path: Path, pg_url: str) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(120_001)])
    version = svc.ingest("fromdb", f"sqlite:///{db}", options=IngestOptions(query="SELECT * FROM t WHERE id % 2 = 0"))
    assert version.row_count == 60_001 and version.source["kind"] == "database"
    with_password = pg_url.replace("postgres@", "postgres:s3cret@", 1)  # trust auth ignores it
    version = svc.ingest("frompg", with_password, options=IngestOptions(query="SELECT generate_series(1, 10) AS n, 'x' AS s"))
    assert version.row_count == 10
    assert "s3cret" not in str(svc.get("frompg").source) and "postgres:***@" in version.source["url"]
    with pytest.raises(InvalidArgument, match="query"):
        svc.ingest("nodb", f"sqlite:///{db}")
    with pytest.raises(InvalidArgument, match="database query failed"):
        svc.ingest("nodb", f"sqlite:///{db}", options=IngestOptions(query="SELECT * FROM missing"))


def test_s3_url_source(svc: DatasetService, s3_bucket: str, s3_endpoint: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, endpoint_url=s3_endpoint, skip_instance_cache=True)
    path = s3_bucket.removeprefix("s3://") + "/raw/data.csv"
    with fs.open(path, "wb") as fh:
        fh.write(b"a,b\n1,x\n2,y\n")
    object.__setattr__(svc.ws.settings, "s3_endpoint_url", s3_endpoint)
    assert svc.ingest("froms3", f"s3://{path}").row_count == 2
    with pytest.raises(NotFound):
        svc.ingest("froms3", f"s3://{path}.missing")


def test_append_makes_a_new_version_with_lineage(svc: DatasetService) -> None:
    svc.ingest("sales", pd.DataFrame({"id": [1, 2], "amount": [1.5, 2.5]}))
    v2 = svc.ingest("sales", pd.DataFrame({"id": [3]}), append=True)
    assert (v2.version, v2.row_count) == (2, 3)
    assert v2.lineage["parents"] == ["sales@1"]
    assert svc.read_table("sales@1").num_rows == 2
    assert svc.read_table("sales").column("amount").to_pylist() == [1.5, 2.5, None]
    with pytest.raises(InvalidArgument, match="not in dataset"):
        svc.ingest("sales", pd.DataFrame({"id": [4], "extra": ["x"]}), append=True)
    assert [v.version for v in svc.versions("sales")] == [1, 2]


def test_versions_are_immutable_and_delete_is_per_version(svc: DatasetService) -> None:
    for n in (1, 2, 3):
        svc.ingest("d", pd.DataFrame({"n": [n] * n}))
    assert svc.get("d").version == 3 and svc.get("d@1").row_count == 1
    assert svc.delete("d@3") == [3]
    assert svc.get("d").version == 2
    with pytest.raises(NotFound, match=r"has no version 3 \(latest is 2\)"):
        svc.get("d@3")
    assert svc.ingest("d", pd.DataFrame({"n": [4]})).version == 4, "numbers are never reused"
    v1, store = svc.get("d@1"), svc.ws.store
    assert svc.verify("d@1") == v1
    # Overwrite version 1's file in the object store with another valid Parquet file (version 2's
    # rows): the version's content is no longer what was committed, and verify says so.
    store.put_bytes(v1.files[0].key, store.read_bytes(svc.get("d@2").files[0].key))
    with pytest.raises(KilnError, match=rf"dataset d@1 is not what was committed: {v1.files[0].key} has \d+ bytes and sha256"):
        svc.verify("d@1")
    store.delete(v1.files[0].key)
    with pytest.raises(KilnError, match=rf"{v1.files[0].key} is missing"):
        svc.verify("d@1")
    assert svc.verify("d@2").version == 2, "the other versions still verify"
    assert svc.delete("d") == [1, 2, 4]
    assert svc.list() == []


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export(svc: DatasetService, tmp_path: Path, fmt: str) -> None:
    svc.ingest("e", pd.DataFrame(ROWS))
    out = svc.export("e", tmp_path / f"out.{fmt}")
    if fmt == "parquet":
        assert pq.read_table(out).num_rows == 3
    elif fmt == "csv":
        assert out.read_text().splitlines()[0] == "id,city,temp"
    else:
        assert json.loads(out.read_text().splitlines()[1])["city"] == "Lima"
    with pytest.raises(InvalidArgument):
        svc.export("e", tmp_path / "out.xml")


def test_empty_csv_with_header_gives_an_empty_version(svc: DatasetService, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("a,b\n")
    version = svc.ingest("empty", path)
    assert version.row_count == 0 and [c.name for c in version.columns] == ["a", "b"]


def test_progress_is_reported(svc: DatasetService, tmp_path: Path) -> None:
    seen: list[float] = []
    path = tmp_path / "p.csv"
    pd.DataFrame({"x": range(1000)}).to_csv(path, index=False)
    svc.ingest("p", path, progress=seen.append)
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_ingest_and_export_report_to_whoever_listens(svc: DatasetService, tmp_path: Path) -> None:
    from kiln.core.progress import reporting

    path = tmp_path / "p.csv"
    pd.DataFrame({"x": range(1000)}).to_csv(path, index=False)
    for run in (lambda: svc.ingest("p", path), lambda: svc.export("p", tmp_path / "p.parquet")):
        seen: list[float] = []
        with reporting(seen.append):
            run()
        assert seen and seen == sorted(set(seen)) and seen[-1] == 1.0


def test_row_order_is_kept_for_large_inputs(ws: Workspace, ctx) -> None:
    svc = DatasetService(ws, ctx)
    table = pa.table({"id": pa.array(range(1_500_000), pa.int64()), "v": pa.array([i % 7 for i in range(1_500_000)])})
    svc.ingest("ordered", table)
    ids = svc.read_table("ordered", columns=["id"]).column("id").to_numpy()
    assert (ids[1:] > ids[:-1]).all()


def test_write_table_records_its_source_in_the_one_audited_commit(svc: DatasetService, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    db = svc.ws.db
    real_write = type(db).write
    calls: list[int] = []

    def counted(self):
        calls.append(1)
        return real_write(self)

    monkeypatch.setattr(type(db), "write", counted)
    version = svc.write_table("made", pd.DataFrame({"a": [1]}), source={"kind": "stream", "stream": "s"})
    monkeypatch.undo()
    assert version.source == {"kind": "stream", "stream": "s"} == svc.get("made@1").source
    assert len(calls) == 1  # the audited ingest commit, no second unaudited update


@pytest.mark.parametrize("suffix", ["/", ""])
def test_s3_folder_source_reads_every_object_under_the_prefix(svc: DatasetService, s3_bucket: str, s3_endpoint: str, suffix: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, endpoint_url=s3_endpoint, skip_instance_cache=True)
    root = s3_bucket.removeprefix("s3://") + "/raw/flights"
    for key, body in [("a.csv", b"a,b\n1,x\n2,y\n"), ("2026/b.csv", b"a,b\n3,z\n"), (".hidden.csv", b"a,b\n9,h\n"), ("README", b"not data")]:
        fs.pipe(f"{root}/{key}", body)
    fs.pipe(root + "-other/c.csv", b"a,b\n7,o\n")  # a sibling prefix that merely starts the same
    object.__setattr__(svc.ws.settings, "s3_endpoint_url", s3_endpoint)
    version = svc.ingest("froms3dir", f"s3://{root}{suffix}")
    assert version.row_count == 3 and version.source["files"] == 2
    assert sorted(svc.read_table("froms3dir").column("a").to_pylist()) == [1, 2, 3]
    assert svc.ingest("froms3dir", f"s3://{root}{suffix}", options=IngestOptions(format="csv")).row_count == 3


def test_s3_empty_or_dataless_prefix_is_not_found(svc: DatasetService, s3_bucket: str, s3_endpoint: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, endpoint_url=s3_endpoint, skip_instance_cache=True)
    bucket = s3_bucket.removeprefix("s3://")
    fs.pipe(f"{bucket}/notes/README", b"no data here")
    object.__setattr__(svc.ws.settings, "s3_endpoint_url", s3_endpoint)
    with pytest.raises(NotFound, match="nothing is stored under that prefix"):
        svc.ingest("x", f"s3://{bucket}/nothing/")
    with pytest.raises(NotFound, match="holds no CSV, JSON or Parquet"):
        svc.ingest("x", f"s3://{bucket}/notes", options=IngestOptions(format="csv"))
    with pytest.raises(NotFound, match="no objects match"):
        svc.ingest("x", f"s3://{bucket}/nothing/*.csv")
