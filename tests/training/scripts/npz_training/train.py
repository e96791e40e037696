"""Arrays in a .npz file on the `training` channel; `--max-iter` keeps its hyphen."""

import argparse
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--penalty", type=str, default="l2")
    args = parser.parse_args()
    assert os.environ["SM_HP_MAX-ITER"] == str(args.max_iter)

    data = np.load(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "train.npz"))
    x_train, y_train = data["x"], data["y"]

    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=args.max_iter, penalty=args.penalty))])
    model.fit(x_train, y_train)
    print("accuracy={:.4f}".format(model.score(x_train, y_train)))
    joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))


if __name__ == "__main__":
    main()
