"""Hyperparameters that are not plain numbers: a space-separated list (`--layers "16 8"`,
one argument), a bool, a dict (k1=v1,k2=v2) and a JSON list."""

import argparse
import ast
import json
import os

import joblib
import pandas as pd
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def str2bool(v):
    return str(v).lower() in ("yes", "true", "t", "1")


def key_values(v):
    return {k: ast.literal_eval(x) for k, x in (pair.split("=", 1) for pair in v.split(","))}


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=str, default="32")
    parser.add_argument("--early_stopping", type=str2bool, default=False)
    parser.add_argument("--solver_opts", type=key_values, default={})
    parser.add_argument("--seeds", type=ast.literal_eval, default=[0])
    parser.add_argument("--activation", type=str, default="relu")
    args = parser.parse_args()

    layers = tuple(int(n) for n in args.layers.split())
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "args.json"), "w") as f:
        json.dump({"layers": list(layers), "early_stopping": args.early_stopping, "solver_opts": args.solver_opts,
                   "seeds": args.seeds, "activation": args.activation, "hps": json.loads(os.environ["SM_HPS"])}, f)

    df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "iris.csv"))
    X, y = df.iloc[:, :-1].to_numpy(), df.iloc[:, -1].to_numpy()
    mlp = MLPClassifier(hidden_layer_sizes=layers, activation=args.activation, solver="lbfgs", max_iter=2000,
                        early_stopping=args.early_stopping, random_state=args.seeds[0], **args.solver_opts)
    model = make_pipeline(StandardScaler(), mlp).fit(X, y)
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
