"""An older XGBoost script: the Booster pickled as `xgboost-model`, with the model_fn
SageMaker's XGBoost framework container calls (no predict_fn: it predicts on a DMatrix)."""

import argparse
import os
import pickle as pkl

import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    """Deserialize and return fitted model."""
    model_file = "xgboost-model"
    with open(os.path.join(model_dir, model_file), "rb") as f:
        booster = pkl.load(f)
    return booster


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_round", type=int, default=10)
    parser.add_argument("--max_depth", type=int, default=3)
    parser.add_argument("--objective", type=str, default="binary:logistic")
    parser.add_argument("--model_dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    args, _ = parser.parse_known_args()

    data = np.loadtxt(os.path.join(args.train, "train.csv"), delimiter=",")
    dtrain = xgb.DMatrix(data[:, 1:], label=data[:, 0])
    booster = xgb.train({"max_depth": args.max_depth, "objective": args.objective, "seed": 0}, dtrain, num_boost_round=args.num_round)

    with open(os.path.join(args.model_dir, "xgboost-model"), "wb") as f:
        pkl.dump(booster, f)
