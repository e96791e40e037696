"""Retention: records past it are trimmed once flushed and committed by every consumer; nothing else is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.db import Database
from kiln.core.errors import InvalidArgument
from kiln.core.workspace import Workspace
from kiln.lake.streams import StreamService
from kiln.lake.streams import _tables as t
from kiln.lake.streams._worker import run_due, trimmable_streams
from tests.streams.conftest import datasets


def _age(svc: StreamService, name: str, upto: int, seconds: float) -> None:
    """Make records up to ``upto`` look ``seconds`` old."""
    sid = _sid(svc, name)
    with svc.ws.db.write() as conn:
        conn.execute(t.records.update().where(t.records.c.stream_id == sid, t.records.c.seq <= upto).values(time=time.time() - seconds))


def _sid(svc: StreamService, name: str) -> int:
    with svc.ws.db.read() as conn:
        return int(conn.execute(sa.select(t.streams.c.id).where(t.streams.c.name == name)).scalar_one())


def _stored(svc: StreamService, name: str) -> tuple[list[int], int]:
    """(sequence numbers in the log, their size as SQL counts it)."""
    with svc.ws.db.read() as conn:
        rows = conn.execute(sa.select(t.records.c.seq, sa.func.length(t.records.c.data)).where(t.records.c.stream_id == _sid(svc, name)).order_by(t.records.c.seq)).all()
    return [r[0] for r in rows], sum(r[1] for r in rows)


def test_old_records_flushed_and_committed_are_trimmed_and_reads_start_at_the_oldest_kept(any_streams: StreamService) -> None:
    svc = any_streams
    svc.create("clicks", retention_s=3600)
    svc.put_records("clicks", [{"n": i} for i in range(1, 6)])
    _age(svc, "clicks", 3, 7200)
    svc.commit("clicks", "etl", svc.read_consumer("clicks", "etl", limit=5).lease or "")
    svc.flush("clicks")
    result = svc.trim("clicks")
    assert (result.trimmed, result.trimmed_sequence_number, result.records, result.held_by) == (3, 3, 2, [])
    stream = svc.get("clicks")
    assert (stream.trimmed_sequence_number, stream.records, stream.last_sequence_number) == (3, 2, 5)
    assert _stored(svc, "clicks") == ([4, 5], stream.bytes)
    assert [r.sequence_number for r in svc.read("clicks").records] == [4, 5], "TRIM_HORIZON moved"
    assert [r.sequence_number for r in svc.read("clicks", position="AT_SEQUENCE_NUMBER", sequence_number=1).records] == [4, 5]
    assert svc.create_consumer("clicks", "late").checkpoint == 3
    assert datasets(svc).read_table("clicks").column("n").to_pylist() == [1, 2, 3, 4, 5], "the dataset keeps everything"
    assert svc.trim("clicks").trimmed == 0


def test_records_not_flushed_or_not_committed_are_held_whatever_their_age(streams: StreamService) -> None:
    """The rule: a lagging consumer holds records back (Kinesis would trim them); the trim says who."""
    streams.create("clicks", retention_s=0)
    streams.put_records("clicks", [{"n": i} for i in range(5)])
    streams.flush("clicks")
    streams.put_records("clicks", [{"n": 5}, {"n": 6}])
    first = streams.read_consumer("clicks", "etl", limit=2)
    streams.commit("clicks", "etl", first.lease or "")
    held = streams.trim("clicks")
    assert (held.trimmed, held.trimmed_sequence_number, held.held_by) == (2, 2, ["consumer etl"])
    rest = streams.read_consumer("clicks", "etl", limit=100)
    streams.commit("clicks", "etl", rest.lease or "")
    assert streams.trim("clicks").held_by == ["flush"] and _stored(streams, "clicks")[0] == [6, 7]
    streams.flush("clicks")
    assert run_due(streams.ws, trim=True)["trimmed"] == {"clicks": 2}, "the worker trims too"
    assert _stored(streams, "clicks") == ([], 0) and streams.get("clicks").bytes == 0
    assert datasets(streams).read_table("clicks").column("n").to_pylist() == list(range(7))


def test_the_log_is_bounded_by_size_keeping_the_newest(streams: StreamService) -> None:
    streams.create("clicks", retention_bytes=2000)
    for i in range(5):
        streams.put_records("clicks", [{"i": i * 100 + j, "pad": "x" * 30} for j in range(100)])
        streams.flush("clicks")
        assert trimmable_streams(streams.ws) == ["clicks"]
        run_due(streams.ws, trim=True)
        seqs, size = _stored(streams, "clicks")
        assert size == streams.get("clicks").bytes and 2000 - 60 < size <= 2000
        assert seqs[-1] == (i + 1) * 100 and seqs == list(range(seqs[0], seqs[-1] + 1)), "the newest are kept"
    assert trimmable_streams(streams.ws) == []


@pytest.mark.parametrize(("args", "message"), [
    ({"retention_s": -1}, "retention_s must be between"), ({"retention_bytes": -5}, "retention_bytes must be"),
    ({"retention_s": "7d"}, "retention_s must be between"), ({"follow": True}, "no source to follow"),
])
def test_bad_settings_are_refused_and_nothing_changes(streams: StreamService, args: dict[str, object], message: str) -> None:
    before = streams.create("clicks")
    with pytest.raises(InvalidArgument, match=message):
        streams.update("clicks", **args)  # type: ignore[arg-type]
    assert streams.get("clicks") == before


def test_cli_sets_retention_and_trims(cli: Any) -> None:
    assert cli("streams", "create", "clicks", "--retention", "0", "--retention-bytes", "1KB").code == 0
    assert orjson.loads(cli("streams", "show", "clicks", "--json").out)["retention_bytes"] == 1024
    cli("streams", "put", "clicks", "--record", '{"n": 1}')
    cli("streams", "flush", "clicks")
    assert "trimmed 1 records" in cli("streams", "trim", "clicks").out
    assert orjson.loads(cli("streams", "set", "clicks", "--retention", "12h", "--json").out)["retention_s"] == 43_200
    bad = cli("streams", "set", "clicks", "--retention", "soon")
    assert bad.code != 0 and "--retention 'soon'" in bad.err


_TRIMMER = """
import sys
from kiln.core.config import load_settings
from kiln.core.context import local_context
from kiln.core.workspace import Workspace
from kiln.lake.streams import StreamService, _retention

svc = StreamService(Workspace(load_settings(home=sys.argv[1])), local_context())
print("trimming", flush=True)
_retention.trim(svc, "clicks", chunk=50)
"""


def test_sigkill_during_a_trim_loses_nothing_acknowledged(tmp_path: Path) -> None:
    home = tmp_path / "kiln"
    ws = Workspace(load_settings(home=str(home)))
    svc = StreamService(ws, local_context())
    svc.create("clicks", retention_s=0)
    for k in range(10):
        svc.put_records("clicks", [{"i": k * 2000 + j} for j in range(2000)])
    svc.flush("clicks")
    svc.put_records("clicks", [{"i": 20_000 + j} for j in range(100)])  # not flushed: never trimmed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _TRIMMER, str(home)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == b"trimming\n"
    deadline = time.time() + 30
    while svc.get("clicks").trimmed_sequence_number < 2000 and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stream = svc.get("clicks")
    seqs, size = _stored(svc, "clicks")
    assert 0 < stream.trimmed_sequence_number < 20_000, "the kill landed mid-trim"
    assert seqs == list(range(stream.trimmed_sequence_number + 1, 20_101)), "the log is whole after the trimmed point"
    assert size == stream.bytes and stream.records == len(seqs)
    assert datasets(svc).get("clicks").row_count == 20_000
    svc.trim("clicks")
    assert _stored(svc, "clicks")[0] == list(range(20_001, 20_101))
    ws.close()


def test_upgrade_from_streams_0001_backfills_sizes_and_keeps_pulling_sources(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kiln' / 'kiln.db'}"
    (tmp_path / "kiln").mkdir()
    db = Database(url)
    db.migrate("streams@streams_0001")
    with db.write() as conn:
        for sid, name, source in ((1, "a", ""), (2, "b", "nats://127.0.0.1:4222/x")):
            conn.execute(sa.text(
                "INSERT INTO lake_streams (id, name, description, dataset, schema, source, flush_rows, flush_interval_s, created_at, created_by, last_seq, flushed_seq, last_flush_at, flush_owner, flush_until) "
                "VALUES (:id, :name, '', :name, '', :source, 10, 60, 1, 'me', 2, 0, 0, '', 0)"), {"id": sid, "name": name, "source": source})
        conn.execute(sa.text("INSERT INTO lake_stream_records VALUES (1, :seq, 1.0, :data)"), [{"seq": 1, "data": '{"n":1}'}, {"seq": 2, "data": '{"n":22}'}])
    db.dispose()
    svc = StreamService(Workspace(load_settings(home=str(tmp_path / "kiln"))), local_context())
    a, b = svc.get("a"), svc.get("b")
    assert (a.bytes, a.records, a.follow, a.retention_s) == (15, 2, False, 7 * 86_400)
    assert b.follow, "the worker pulled every source before: such streams keep being pulled"
    svc.ws.close()
