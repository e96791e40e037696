"""Reads its settings through the sagemaker-training toolkit's Environment(), which
finds the job folder by SAGEMAKER_BASE_DIR."""

import os

import joblib
import pandas as pd
from sagemaker_training import environment
from sklearn.ensemble import RandomForestClassifier


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    env = environment.Environment()
    hps = env.hyperparameters
    df = pd.read_csv(os.path.join(env.channel_input_dirs["train"], "iris.csv"))
    X, y = df.drop(columns=["species"]).to_numpy(), df["species"]
    model = RandomForestClassifier(n_estimators=hps["n_estimators"], max_depth=hps["max_depth"], random_state=0).fit(X, y)
    joblib.dump(model, os.path.join(env.model_dir, "model.joblib"))
