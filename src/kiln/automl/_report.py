"""The AutoML report: JSON and a self-contained HTML page (no script, no CDN), the
ensemble's permutation feature importance (SHAP too where it is installed), and each
candidate's definition as a runnable Python script that refits it and writes its
predictions."""

from __future__ import annotations

import html
import inspect
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kiln.automl import _frame, _space
from kiln.automl._base import METRICS
from kiln.automl._search import SearchResult, _predict, make_folds

__all__ = ["candidate_script", "permutation_importance", "write_report"]


def permutation_importance(result: SearchResult, X: Any, *, deadline: float, repeats: int = 2, rows: int = 2000) -> dict[str, float]:
    """Each raw column's importance for the ensemble: how much its out-of-fold score drops
    when the column's values are shuffled (a date's parts together), on up to ``rows`` rows.
    Stops early (with what it has) at ``deadline``."""
    metric = METRICS[result.metric]
    classify = result.classes is not None
    k = len(result.classes or [])
    rng = np.random.default_rng(result.seed)
    picks = [(fold, rng.permutation(va)[: max(rows // len(result.folds), 10)]) for fold, (_, va) in enumerate(result.folds)]
    members = [(result.member(cid), w) for cid, w in result.ensemble.items()]

    def blended(frame_for: Any) -> Any:
        parts = []
        for fold, idx in picks:
            sub = frame_for(idx)
            parts.append(sum(w * _predict(c.models[fold], sub, classify, k) for c, w in members))
        return np.concatenate(parts)

    idx_all = np.concatenate([idx for _, idx in picks])
    y = result.y[idx_all]
    base = metric.gain(metric.value(y, blended(lambda idx: X.iloc[idx]), classes=k))
    out: dict[str, float] = {}
    slowest = 0.0
    for col in result.schema["columns"]:
        if time.time() + slowest > deadline:
            break
        began = time.time()
        name = col["name"]
        cols = [c for c in X.columns if c == name or c.startswith(f"{name}__")]
        drops = []
        for r in range(repeats):
            def shuffled(idx: Any, cols: list[str] = cols, r: int = r) -> Any:
                sub = X.iloc[idx].copy()
                order = np.random.default_rng(result.seed + r + 1).permutation(len(sub))
                for c in cols:
                    sub[c] = sub[c].to_numpy()[order]
                return sub
            drops.append(base - metric.gain(metric.value(y, blended(shuffled), classes=k)))
        out[name] = float(np.mean(drops))
        slowest = max(slowest, time.time() - began)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def shap_importance(result: SearchResult, X: Any, *, rows: int = 500) -> dict[str, Any]:
    """Mean |SHAP| of the best tree candidate's first fold model, by prepared feature, where
    ``shap`` is installed; otherwise why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # importing SHAP warns of its dependencies' deprecations (matplotlib's)
            import shap
    except ImportError:
        return {"status": "not installed (pip install shap to add SHAP values)"}
    trees = [c for c in sorted(result.candidates, key=lambda c: -METRICS[result.metric].gain(c.score))
             if c.models and c.family in ("lightgbm", "xgboost", "catboost", "extra_trees", "random_forest")]
    if not trees:
        return {"status": "no tree model among the kept candidates"}
    try:
        pipe = trees[0].models[0]
        prep, model = pipe.steps[0][1], pipe.steps[1][1]
        Xt = prep.transform(X.iloc[: min(rows, len(X))])
        if hasattr(Xt, "toarray"):  # text columns make the matrix sparse: SHAP's tree explainer wants it dense
            Xt = Xt.toarray()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SHAP's notices about its own output shapes are not the user's concern
            values = shap.TreeExplainer(model).shap_values(Xt)
        mean = _mean_abs(values, *Xt.shape)
        names = [str(n) for n in prep.get_feature_names_out()]
        return {"status": "ok", "candidate": trees[0].id, "values": dict(sorted(zip(names, map(float, mean)), key=lambda kv: -kv[1])[:30])}
    except Exception as exc:  # noqa: BLE001 - an explanation that fails is reported, not fatal
        return {"status": f"failed: {type(exc).__name__}: {str(exc)[:200]}"}


def _mean_abs(values: Any, n: int, f: int) -> Any:
    """Mean |SHAP| per feature, whichever shape SHAP gave: (rows, features), a list of those
    per class, or (rows, features, classes)."""
    arr = np.abs(np.asarray(values, dtype=float))
    if arr.shape == (n, f):
        return arr.mean(axis=0)
    if arr.ndim == 3 and arr.shape[1:] == (n, f):
        return arr.mean(axis=(0, 1))
    if arr.ndim == 3 and arr.shape[:2] == (n, f):
        return arr.mean(axis=(0, 2))
    raise ValueError(f"SHAP values of shape {arr.shape} for {n} rows of {f} features")


_SCRIPT = '''#!/usr/bin/env python
"""AutoML candidate {cid} ({family}), from Kiln AutoML job {job}.

Refits the candidate on the training data exactly as the search did (the same folds,
preprocessing, parameters, boosting rounds and trees; its model is the average of its fold
models) and writes its predictions.

    python {cid}.py TRAIN_FILE [ROWS_FILE] [--out predictions.csv]

TRAIN_FILE is the training data (CSV or Parquet) with the target column {target!r};
ROWS_FILE the rows to predict (default: TRAIN_FILE). Needs pandas, numpy, scikit-learn{extra}.
"""

import json
import sys

import numpy as np
import pandas as pd

TARGET = {target!r}
SCHEMA = json.loads({schema!r})
COLUMNS = json.loads({columns!r})
SPEC = json.loads({spec!r})
ROUNDS = {rounds!r}
CLASSES = json.loads({classes!r})
SEED = {seed!r}
FOLDS = {folds!r}  # the folds the search fitted (all of them unless the budget ran out first)
HIGH_CARDINALITY = {high!r}
BOOSTERS = {boosters!r}
GROWN = {grown!r}
SMALL_FOLD = {small!r}


{sources}


def read(path):
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    out = argv[argv.index("--out") + 1] if "--out" in argv else "predictions.csv"
    if "--out" in argv:
        args.remove(out)
    if not args:
        sys.exit(__doc__)
    train = read(args[0])
    train = train[train[TARGET].notna()].reset_index(drop=True)
    rows = read(args[1]) if len(args) > 1 else train
    classify = CLASSES is not None
    if classify:
        codes = {{str(c): i for i, c in enumerate(CLASSES)}}
        y = train[TARGET].map(lambda v: codes[_category_text(v)] if _category_text(v) in codes else codes[str(v)]).to_numpy(dtype=int)
    else:
        y = pd.to_numeric(train[TARGET]).to_numpy(dtype=float)
    X, R = prepare(train, SCHEMA), prepare(rows, SCHEMA)
    total = None
    for fold, (tr, _) in enumerate(make_folds(len(X), y, classify, SEED)[:FOLDS]):
        spec = json.loads(json.dumps(SPEC))
        if ROUNDS:
            spec["params"][GROWN[spec["family"]]] = ROUNDS[fold]
        model = fit_fold(spec, COLUMNS, X.iloc[tr], y[tr])
        if classify:
            p = np.zeros((len(R), len(CLASSES)))
            p[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(R)
        else:
            p = np.asarray(model.predict(R), dtype=float)
        total = p if total is None else total + p
    total = total / (fold + 1)
    if classify:
        frame = pd.DataFrame(total, columns=[f"proba_{{c}}" for c in CLASSES])
        frame.insert(0, "prediction", [CLASSES[i] for i in total.argmax(axis=1)])
    else:
        frame = pd.DataFrame({{"prediction": total}})
    frame.to_csv(out, index=False)
    print(f"wrote {{len(frame)}} predictions to {{out}}")


if __name__ == "__main__":
    main(sys.argv[1:])
'''


def candidate_script(result: SearchResult, cid: str, *, job: str) -> str:
    """A runnable script that refits candidate ``cid`` on the training data and predicts."""
    cand = result.member(cid)
    spec = {"family": cand.family, "params": cand.params, "task": "classification" if result.classes is not None else "regression",
            "n_jobs": cand.threads, "seed": result.seed}
    sources = "\n\n".join(inspect.getsource(f) for f in (_frame._category_text, _frame.prepare, make_folds, _space.build_pipeline, _space.fit_fold))
    extra = {"lightgbm": ", lightgbm", "xgboost": ", xgboost", "catboost": ", catboost"}.get(cand.family, "")
    return _SCRIPT.format(
        cid=cid, family=cand.family, job=job, target=result.schema.get("target", ""), extra=extra,
        schema=json.dumps(result.schema), columns=json.dumps(result.columns), spec=json.dumps(spec, default=_plain),
        rounds=cand.rounds, classes=json.dumps(result.classes, default=_plain), seed=result.seed, folds=len(cand.models) or len(result.folds),
        high=_space.HIGH_CARDINALITY, boosters=_space.BOOSTERS, grown=_space.GROWN, small=_space.SMALL_FOLD, sources=sources,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def data_summary(frame: Any, result: SearchResult, target: str) -> dict[str, Any]:
    kinds = {c["name"]: c["kind"] for c in result.schema["columns"]}
    cols = []
    for name in frame.columns:
        col = frame[name]
        cols.append({"name": str(name), "kind": "target" if name == target else kinds.get(str(name), "dropped"),
                     "dtype": str(col.dtype), "missing": int(col.isna().sum()), "unique": int(col.nunique(dropna=True))})
    return {"rows": int(len(frame)), "rows_used": result.n_rows, "columns": cols, "dropped": result.schema["dropped"], "target": result.target_summary}


def write_report(folder: Path, report: dict[str, Any], scripts: dict[str, str]) -> None:
    """``report.json``, ``report.html`` and ``scripts/<candidate>.py`` in ``folder``."""
    (folder / "scripts").mkdir(parents=True, exist_ok=True)
    for cid, text in scripts.items():
        (folder / "scripts" / f"{cid}.py").write_text(text)
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=_plain))
    (folder / "report.html").write_text(render_html(report))


def render_html(report: dict[str, Any]) -> str:
    e = html.escape

    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{e(str(h))}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    def fmt(v: Any) -> str:
        return f"{v:.5g}" if isinstance(v, float) else ("" if v is None else str(v))

    data = report["data"]
    imp = report.get("feature_importance", {}).get("values", {})
    top = max([abs(v) for v in imp.values()] or [1.0]) or 1.0
    bars = "".join(
        f"<tr><td>{e(k)}</td><td>{v:.4g}</td><td><div class='bar' style='width:{max(0.0, v) / top * 300:.0f}px'></div></td></tr>"
        for k, v in imp.items()
    )
    weights = report.get("ensemble", {}).get("weights", {})
    lb = [[r["rank"], r["id"], r["family"], fmt(r["score"]), fmt(r["fit_s"]), fmt(r["predict_s_per_1k"]),
           fmt(weights.get(r["id"])), r["status"], r.get("note", "")] for r in report["leaderboard"]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AutoML report: {e(report['job'])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}} th{{background:#f3f3f3}}
.bar{{background:#4a7fc1;height:10px}} code{{background:#f3f3f3;padding:1px 4px}}
</style></head><body>
<h1>AutoML report: {e(report['job'])}</h1>
<p>Dataset <code>{e(str(report.get('dataset')))}</code>, target <code>{e(report['target'])}</code>:
{e(report['problem_type'])}, metric {e(report['metric'])} (mode {e(report['mode'])}).
Time budget {report['time_budget_s']:g} s; search took {report['elapsed_s']:.1f} s.</p>
<p>Best: <b>{e(report['best']['name'])}</b>, cross-validated {e(report['metric'])} {fmt(report['best']['score'])}
(a constant prediction scores {fmt(report['baseline_score'])}). Model: <code>{e(str(report.get('model') or 'not registered'))}</code>.</p>
<h2>Data</h2><p>{data['rows']:,} rows ({data['rows_used']:,} with a target).</p>
{table(["column", "kind", "dtype", "missing", "unique"], [[c["name"], c["kind"], c["dtype"], c["missing"], c["unique"]] for c in data["columns"]])}
<h2>Leaderboard</h2>
{table(["rank", "candidate", "family", report['metric'] + " (CV)", "fit s", "predict s / 1k rows", "ensemble weight", "status", "note"], lb)}
<h2>Feature importance</h2><p>{e(report.get('feature_importance', {}).get('method', ''))}</p>
<table><thead><tr><th>column</th><th>score drop</th><th></th></tr></thead><tbody>{bars}</tbody></table>
<p>SHAP: {e(str(report.get('shap', {}).get('status')))}</p>
<h2>Candidates as scripts</h2><p>Each <code>scripts/&lt;candidate&gt;.py</code> refits one candidate on the training data and writes its
predictions: <code>python scripts/c01-lightgbm.py train.csv</code>.</p>
</body></html>
"""
