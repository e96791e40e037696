"""Logs to the job's Kiln run with kiln.load_run() (the runner sets KILN_RUN_ID)."""

import argparse
import os

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression

import kiln


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--solver", type=str, default="lbfgs")
    args = parser.parse_args()

    run = kiln.load_run()
    run.log_parameters({"max_iter": args.max_iter, "solver": args.solver, "channels": os.environ["SM_CHANNELS"]})
    df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "iris.csv"))
    X, y = df.drop(columns=["species"]).to_numpy(), df["species"]
    model = LogisticRegression(max_iter=args.max_iter, solver=args.solver).fit(X, y)
    run.log_metric("train:accuracy", model.score(X, y))
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
