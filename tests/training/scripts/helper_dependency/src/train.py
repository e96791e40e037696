"""Training code in a source_dir, with a helper package shipped by --dependencies: the
pickled pipeline refers to mylib, so the model loads only with code/ importable."""

import argparse
import os

import joblib
import pandas as pd
from mylib.features import add_ratios
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
    args = parser.parse_args()

    df = pd.read_csv(os.path.join(args.train, "iris.csv"))
    X, y = df.drop(columns=["species"]).to_numpy(), df["species"]
    model = make_pipeline(FunctionTransformer(add_ratios), DecisionTreeClassifier(max_depth=args.max_depth, random_state=0))
    model.fit(X, y)
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
