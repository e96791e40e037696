"""Logistic regression on a CSV with a header and the label last; the serving code lives
in inference.py. `-C` is a one-letter hyperparameter (SageMaker passes it with one dash)."""

import argparse
import json
import os

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("-C", type=float, default=1.0)
    parser.add_argument("--max_iter", type=int, default=100)
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--train-file", type=str, default="breast_cancer.csv")
    return parser.parse_known_args()


if __name__ == "__main__":
    args, _ = parse_args()
    print("reading", os.path.join(args.train, args.train_file))
    df = pd.read_csv(os.path.join(args.train, args.train_file))
    X, y = df.drop(columns=["target"]), df["target"]

    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(X, y)
    print(f"train accuracy: {model.score(X, y):.4f}")

    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
    with open(os.path.join(args.model_dir, "features.json"), "w") as f:
        json.dump(list(X.columns), f)
