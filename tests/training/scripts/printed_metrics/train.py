"""Prints a line per epoch for the job's metric definitions to pick up."""

import argparse
import os

import joblib
import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    args = parser.parse_args()

    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    X, y = data[:, 1:], data[:, 0]
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)
    clf = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.learning_rate, random_state=0)
    for epoch in range(1, args.epochs + 1):
        clf.partial_fit(Xs, y, classes=np.array([0.0, 1.0]))
        loss = log_loss(y, clf.predict_proba(Xs))
        print(f"epoch={epoch} loss={loss:.4f} accuracy={clf.score(Xs, y):.4f}", flush=True)
    joblib.dump(make_pipeline(scaler, clf), os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
