"""Benchmark: Kiln's feature store against Feast (file offline store, SQLite online store).

    python benchmarks/features.py --feast-python .venv-feast/bin/python   # the issue's sizes
    python benchmarks/features.py --big                                   # Kiln alone, 10x

Same data for everyone, generated once with a fixed seed: feature rows (driver_id,
event_timestamp, f0..f9 doubles) over 30 days, entity rows (driver_id, event_timestamp),
some of whose ids or times have no feature row (a point-in-time join must keep them, with
nulls). Measured, each in a fresh subprocess, tools interleaved (a b c, b c a, c a b...),
median of --repeat runs:

* training set: Kiln's ``training_set`` (ASOF join keyed on event then write time, TTL,
  written as a new dataset version) against Feast's ``get_historical_features(...).to_df()``
  and a plain DuckDB ``ASOF LEFT JOIN`` of the same Parquet written to a Parquet file;
* materialisation of --mat-rows rows into the online store: Kiln's bulk ``ingest`` (offline
  Parquet + the latest per id online) against Feast's ``materialize``;
* online reads of 1 entity x 10 features: Kiln's ``get_record`` in-process and over REST
  (uvicorn, one keep-alive client: GET of a record, then the feature server's
  ``POST /v1/features/online``), Feast's ``get_online_features`` in-process, and a plain
  SQLite primary-key lookup.

Memory is the process's peak RSS (ru_maxrss) and the RSS it added above its own start
(measured after imports, before the work). The load average is printed with each run.
Feast is a benchmark-only dependency: give its interpreter with --feast-python (it lives in
a venv of its own); without one it is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
T0 = 1_700_000_000  # 2023-11-14
DAYS = 30
FEATS = [f"f{i}" for i in range(10)]


# -- data ---------------------------------------------------------------------------------


def make_data(root: Path, *, feature_rows: int, entity_rows: int, mat_rows: int, seed: int = 0) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    ids = max(1000, feature_rows // 10)
    rng = np.random.default_rng(seed)
    span = DAYS * 86400 * 10**6

    def ts(us: Any) -> Any:
        return pa.array(us, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))

    out = {}
    path = root / "features.parquet"
    if not path.exists():
        writer = None
        for start in range(0, feature_rows, 1_000_000):
            n = min(1_000_000, feature_rows - start)
            cols = {"driver_id": rng.integers(0, ids, n), "event_timestamp": ts(T0 * 10**6 + rng.integers(0, span, n))}
            cols.update({f: rng.random(n) for f in FEATS})
            table = pa.table(cols)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
    out["features"] = str(path)
    path = root / "entities.parquet"
    if not path.exists():
        # 5% of ids never have a feature row; times reach a day before the first record.
        table = pa.table({"driver_id": rng.integers(0, int(ids * 1.05), entity_rows), "event_timestamp": ts((T0 - 86400) * 10**6 + rng.integers(0, span + 86400 * 10**6, entity_rows))})
        pq.write_table(table, path)
    out["entities"] = str(path)
    path = root / "mat.parquet"
    if not path.exists():
        cols = {"driver_id": np.arange(mat_rows), "event_timestamp": ts(T0 * 10**6 + rng.integers(0, span, mat_rows))}
        cols.update({f: rng.random(mat_rows) for f in FEATS})
        pq.write_table(pa.table(cols), path)
    out["mat"] = str(path)
    out["ids"] = ids
    return out


# -- tasks, each run in a fresh process -----------------------------------------------------


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _kiln(home: str) -> Any:
    import kiln
    from kiln.core.config import load_settings

    return kiln.Client(settings=load_settings(home=home))  # Kiln as shipped: DuckDB at 512 MB a connection, spilling past it


def task_kiln_setup(args: dict[str, Any]) -> dict[str, Any]:
    client = _kiln(args["home"])
    start = time.perf_counter()
    client.datasets.ingest("drivers", args["features"])
    client.datasets.ingest("ents", args["entities"])
    client.datasets.ingest("mat", args["mat"])
    client.features.create("drivers", record_id="driver_id", event_time="event_timestamp", dataset="drivers@1", ttl=f"{args['ttl_days']}d", online=False)
    return {"seconds": time.perf_counter() - start}


def task_kiln_train(args: dict[str, Any]) -> dict[str, Any]:
    import duckdb  # noqa: F401 - imports before the clock, as Feast's are
    import pyarrow.parquet  # noqa: F401

    client = _kiln(args["home"])
    client.features.describe("drivers")
    rss0 = _rss()
    cpu0 = _cpu()
    start = time.perf_counter()
    v = client.features.training_set("ents", features=[f"drivers:{f}" for f in FEATS], event_time_column="event_timestamp", output="train")
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    nulls = client.sql("SELECT count(*) AS n FROM train WHERE f0 IS NULL").rows()[0]["n"]
    return {"seconds": seconds, "cpu": cpu, "rows": v.row_count, "null_rows": nulls, "peak": _peak(), "added": _peak() - rss0}


def task_duck_train(args: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    out = Path(args["scratch"]) / "duck-train.parquet"
    con = duckdb.connect()
    rss0 = _rss()
    cpu0 = _cpu()
    start = time.perf_counter()
    con.execute(
        f"COPY (SELECT e.*, {', '.join('f.' + f for f in FEATS)} FROM read_parquet('{args['entities']}') e "
        f"ASOF LEFT JOIN read_parquet('{args['features']}') f ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp) "
        f"TO '{out}' (FORMAT parquet)"
    )
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "peak": _peak(), "added": _peak() - rss0}


def _feast_repo(args: dict[str, Any], online_db: str) -> Any:
    from datetime import timedelta

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.types import Float64
    from feast.value_type import ValueType

    repo = Path(args["scratch"]) / "feast"
    repo.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(project="bench", registry=str(repo / "registry.db"), provider="local", online_store=SqliteOnlineStoreConfig(path=online_db),
                        offline_store={"type": "file"}, entity_key_serialization_version=3, repo_path=str(repo))
    store = FeatureStore(config=config)
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    views = []
    for name, path in (("drivers", args["features"]), ("mat", args["mat"])):
        source = FileSource(name=f"{name}_source", path=path, timestamp_field="event_timestamp")
        views.append(FeatureView(name=name, entities=[driver], ttl=timedelta(days=args["ttl_days"]), schema=[Field(name=f, dtype=Float64) for f in FEATS], source=source, online=True))
    store.apply([driver, *views])
    return store


def task_feast_train(args: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    store = _feast_repo(args, str(Path(args["scratch"]) / "feast-online-train.db"))
    entity_df = pd.read_parquet(args["entities"])
    rss0 = _rss()
    cpu0 = _cpu()
    start = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=[f"drivers:{f}" for f in FEATS]).to_df()
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    return {"seconds": seconds, "cpu": cpu, "rows": len(df), "null_rows": int(df["f0"].isna().sum()), "peak": _peak(), "added": _peak() - rss0}


def task_kiln_mat(args: dict[str, Any]) -> dict[str, Any]:
    client = _kiln(args["home"])
    name = f"mat{args['run']}"
    client.features.create(name, record_id="driver_id", event_time="event_timestamp", dataset="mat@1", ingest=False)
    rss0 = _rss()
    cpu0 = _cpu()
    start = time.perf_counter()
    res = client.features.ingest(name, "mat@1")
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    return {"seconds": seconds, "cpu": cpu, "rows": res.rows, "online": res.online, "peak": _peak(), "added": _peak() - rss0}


def task_feast_mat(args: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime, timezone

    db = Path(args["scratch"]) / f"feast-online-mat{args['run']}.db"
    db.unlink(missing_ok=True)
    store = _feast_repo(args, str(db))
    rss0 = _rss()
    cpu0 = _cpu()
    start = time.perf_counter()
    store.materialize(start_date=datetime.fromtimestamp(T0 - 86400, tz=timezone.utc), end_date=datetime.fromtimestamp(T0 + (DAYS + 1) * 86400, tz=timezone.utc), feature_views=["mat"])
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu0
    return {"seconds": seconds, "cpu": cpu, "peak": _peak(), "added": _peak() - rss0, "online_db": str(db)}


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50_ms": samples[len(samples) // 2] * 1e3, "p99_ms": samples[int(len(samples) * 0.99)] * 1e3}


def task_kiln_online(args: dict[str, Any]) -> dict[str, Any]:
    import random

    client = _kiln(args["home"])
    rng = random.Random(1)
    name = f"mat{args['run']}"
    client.features.get_record(name, 1)
    samples = []
    for _ in range(args["reads"]):
        rid = rng.randrange(args["mat_rows"])
        start = time.perf_counter()
        rec = client.features.get_record(name, rid, features=FEATS)
        samples.append(time.perf_counter() - start)
    assert len(rec.features) == 10
    return _percentiles(samples)


def task_kiln_rest(args: dict[str, Any]) -> dict[str, Any]:
    import random
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "KILN_HOME": args["home"], "KILN_AUTH": "false"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "kiln.server.app:create_app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-kiln-client": "1"})
        deadline = time.time() + 60
        while True:
            try:
                http.get("/v1/health")
                break
            except httpx.TransportError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the server did not start: {server.stderr.read().decode()[-2000:] if server.stderr else ''}") from None
                time.sleep(0.2)
        rng = random.Random(2)
        name = f"mat{args['run']}"
        params = [("features", f) for f in FEATS]
        for _ in range(50):
            http.get(f"/v1/feature-groups/{name}/records/1", params=params).raise_for_status()
        samples = []
        for _ in range(args["reads"]):
            rid = rng.randrange(args["mat_rows"])
            start = time.perf_counter()
            resp = http.get(f"/v1/feature-groups/{name}/records/{rid}", params=params)
            samples.append(time.perf_counter() - start)
            resp.raise_for_status()
        out = _percentiles(samples)
        # The feature server: POST /v1/features/online (BatchGetRecord) for one id.
        posts = []
        for _ in range(args["reads"]):
            body = {"identifiers": [{"feature_group": name, "record_ids": [str(rng.randrange(args["mat_rows"]))], "features": FEATS}]}
            start = time.perf_counter()
            resp = http.post("/v1/features/online", json=body)
            posts.append(time.perf_counter() - start)
            resp.raise_for_status()
        out.update({f"post_{k}": v for k, v in _percentiles(posts).items()})
        return out
    finally:
        server.terminate()
        server.wait(10)


def task_feast_online(args: dict[str, Any]) -> dict[str, Any]:
    import random

    db = Path(args["scratch"]) / f"feast-online-mat{args['run']}.db"
    store = _feast_repo(args, str(db))
    rng = random.Random(1)
    feats = [f"mat:{f}" for f in FEATS]
    store.get_online_features(features=feats, entity_rows=[{"driver_id": 1}])
    samples = []
    for _ in range(args["reads"]):
        rid = rng.randrange(args["mat_rows"])
        start = time.perf_counter()
        got = store.get_online_features(features=feats, entity_rows=[{"driver_id": rid}]).to_dict()
        samples.append(time.perf_counter() - start)
    assert got["f0"][0] is not None
    return _percentiles(samples)


def task_sqlite_plain(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: a primary-key lookup of one JSON row in SQLite, decoded."""
    import random
    import sqlite3

    import orjson

    db = Path(args["scratch"]) / "plain-mat.db"
    if not db.exists():  # the same rows as materialised, as JSON
        import pyarrow.parquet as pq

        con = sqlite3.connect(db)
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
        for batch in pq.ParquetFile(args["mat"]).iter_batches(100_000):
            rows = batch.to_pylist()
            con.executemany("INSERT INTO t VALUES (?, ?)", ((r["driver_id"], orjson.dumps({f: r[f] for f in FEATS})) for r in rows))
        con.commit()
        con.close()
    con = sqlite3.connect(db)
    rng = random.Random(1)
    samples = []
    for _ in range(args["reads"]):
        rid = rng.randrange(args["mat_rows"])
        start = time.perf_counter()
        row = con.execute("SELECT data FROM t WHERE id = ?", (rid,)).fetchone()
        orjson.loads(row[0])
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


TASKS = {name.removeprefix("task_"): fn for name, fn in globals().items() if name.startswith("task_")}


# -- the driver -----------------------------------------------------------------------------


def run_task(python: str, task: str, args: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    load = os.getloadavg()[0]
    proc = subprocess.run([python, str(HERE), "--task", task, "--args", json.dumps(args)], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-1500:], "load": load}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load"] = load
    return result


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feature-rows", type=int, default=2_000_000)
    p.add_argument("--entity-rows", type=int, default=500_000)
    p.add_argument("--mat-rows", type=int, default=1_000_000)
    p.add_argument("--reads", type=int, default=5_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--ttl-days", type=int, default=7)
    p.add_argument("--feast-python", default="")
    p.add_argument("--big", action="store_true", help="Kiln alone at 10x (5M entity rows over 20M feature rows).")
    p.add_argument("--only", default="train,mat,online", help="Which parts to run.")
    p.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "kiln-bench-features"))
    p.add_argument("--home", default="", help="Reuse this Kiln workspace of an earlier run (its setup is skipped).")
    p.add_argument("--mat-run", type=int, default=None, help="Online reads from the stores of this earlier materialisation run (with --only online).")
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--args", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.task:
        print(json.dumps(TASKS[a.task](json.loads(a.args))))
        return
    if a.big:
        a.feature_rows, a.entity_rows, a.feast_python, a.only = a.feature_rows * 10, a.entity_rows * 10, "", "train"
    root = Path(a.data) / f"{a.feature_rows}x{a.entity_rows}x{a.mat_rows}"
    print(f"data: {a.feature_rows:,} feature rows x 10 features, {a.entity_rows:,} entity rows, {a.mat_rows:,} rows to materialise; {os.cpu_count()} CPUs; in {root}")
    data = make_data(root, feature_rows=a.feature_rows, entity_rows=a.entity_rows, mat_rows=a.mat_rows)
    home = Path(a.home) if a.home else root / f"kiln-{os.getpid()}"
    args = {**data, "home": str(home), "scratch": str(root), "ttl_days": a.ttl_days, "mat_rows": a.mat_rows, "reads": a.reads}
    me = sys.executable
    feast = a.feast_python
    if feast and subprocess.run([feast, "-c", "import feast"], capture_output=True).returncode != 0:
        print(f"feast cannot be imported by {feast}: skipped")
        feast = ""
    if not a.home:
        setup = run_task(me, "kiln_setup", args)
        print(f"kiln setup (datasets + feature group, offline only): {setup.get('seconds', 0):.1f} s {setup.get('error', '')}")
    results: dict[str, list[dict[str, Any]]] = {}

    def interleave(tools: list[tuple[str, str, str]], extra: dict[str, Any] | None = None) -> None:
        for r in range(a.repeat):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for label, python, task in order:
                res = run_task(python, task, {**args, "run": r, **(extra or {})})
                results.setdefault(label, []).append(res)
                print(f"  run {r} {label:<22} " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items() if k != "online_db"), flush=True)

    parts = a.only.split(",")
    if "train" in parts:
        print("\ntraining set (point-in-time join):")
        tools = [("kiln", me, "kiln_train"), ("duckdb asof (floor)", me, "duck_train")] + ([("feast", feast, "feast_train")] if feast else [])
        interleave(tools)
    if "mat" in parts or ("online" in parts and a.mat_run is None):
        print("\nmaterialisation (offline -> online):")
        interleave([("kiln ingest", me, "kiln_mat")] + ([("feast materialize", feast, "feast_mat")] if feast else []))
    if "online" in parts:
        print("\nonline reads, 1 entity x 10 features:")
        interleave([("kiln in-process", me, "kiln_online"), ("kiln rest", me, "kiln_rest"), ("sqlite lookup (floor)", me, "sqlite_plain")]
                   + ([("feast in-process", feast, "feast_online")] if feast else []), None if a.mat_run is None else {"run": a.mat_run})
    print("\nsummary (medians):")
    summary = {}
    for label, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"  {label:<24} failed: {runs[0].get('error', '')[-600:]}")
            continue
        med = {k: statistics.median(r[k] for r in ok) for k in ok[0] if isinstance(ok[0][k], int | float)}
        summary[label] = med
        cells = []
        for k, v in med.items():
            cells.append(f"{k}={_gb(v)}" if k in ("peak", "added") else f"{k}={v:,.3f}" if isinstance(v, float) and not float(v).is_integer() else f"{k}={int(v):,}")
        print(f"  {label:<24} " + ", ".join(cells))
    def ratio(a_: str, b_: str, key: str) -> str:
        if a_ in summary and b_ in summary and summary[a_].get(key):
            return f"{summary[b_][key] / summary[a_][key]:.2f}x"
        return "n/a"
    print("\nagainst the targets:")
    print(f"  training set: kiln / duckdb floor time = {ratio('duckdb asof (floor)', 'kiln', 'seconds')} (target <= 1.5x); feast / kiln time = {ratio('kiln', 'feast', 'seconds')} (target ~10x)")
    print(f"  training set: kiln peak / feast peak = {ratio('feast', 'kiln', 'peak')} (target <= 0.2x)")
    print(f"  materialisation: feast / kiln = {ratio('kiln ingest', 'feast materialize', 'seconds')} (target >= 10x)")
    print(f"  online p99 in-process: kiln / feast = {ratio('feast in-process', 'kiln in-process', 'p99_ms')} (target <= 0.33x); REST p99 = {summary.get('kiln rest', {}).get('p99_ms', float('nan')):.3f} ms GET, "
          f"{summary.get('kiln rest', {}).get('post_p99_ms', float('nan')):.3f} ms POST /v1/features/online (target <= 2 ms)")
    out = Path(a.data) / ("features-big.json" if a.big else "features.json")
    out.write_text(json.dumps({"args": vars(a), "results": results, "summary": summary}, indent=1, default=str))
    print(f"\nall runs: {out}")


if __name__ == "__main__":
    main()
