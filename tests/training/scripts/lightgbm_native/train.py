"""LightGBM on a CSV with a header and the label last, saved as a native model.txt."""

import argparse
import os

import lightgbm as lgb
import pandas as pd

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num_leaves", type=int, default=31)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--num_boost_round", type=int, default=50)
    parser.add_argument("--objective", type=str, default="regression")
    parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", type=str, default=os.environ["SM_CHANNEL_TRAIN"])
    args = parser.parse_args()

    df = pd.read_csv(os.path.join(args.train, "diabetes.csv"))
    X, y = df.iloc[:, :-1], df.iloc[:, -1]
    params = {"objective": args.objective, "num_leaves": args.num_leaves, "learning_rate": args.learning_rate,
              "min_data_in_leaf": 5, "verbose": -1, "seed": 0, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=args.num_boost_round)
    booster.save_model(os.path.join(args.model_dir, "model.txt"))
