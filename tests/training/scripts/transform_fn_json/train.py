"""A k-nearest-neighbours classifier (`-k`, one letter) served by a transform_fn."""

import argparse
import os

import joblib
import pandas as pd
from sklearn.neighbors import KNeighborsClassifier

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--weights", type=str, default="uniform")
    args = parser.parse_args()
    df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "iris.csv"))
    X, y = df.drop(columns=["species"]).to_numpy(), df["species"].to_numpy()
    joblib.dump(KNeighborsClassifier(n_neighbors=args.k, weights=args.weights).fit(X, y), os.path.join(os.environ["SM_MODEL_DIR"], "knn.joblib"))
