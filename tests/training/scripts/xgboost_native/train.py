"""XGBoost script mode as in SageMaker's abalone example: headerless CSV, label first,
`train` and `validation` channels; the Booster saved natively as `xgboost-model`
(no model_fn: the model folder says how to load it). Evaluation lines feed the metric
definitions."""

import argparse
import logging
import os

import pandas as pd
import xgboost as xgb


def read_channel(path):
    frames = [pd.read_csv(os.path.join(path, f), header=None) for f in sorted(os.listdir(path))]
    data = pd.concat(frames)
    return xgb.DMatrix(data.iloc[:, 1:].to_numpy(), label=data.iloc[:, 0].to_numpy())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    # Hyperparameters are described here.
    parser.add_argument("--max_depth", type=int)
    parser.add_argument("--eta", type=float)
    parser.add_argument("--gamma", type=int)
    parser.add_argument("--min_child_weight", type=int)
    parser.add_argument("--subsample", type=float)
    parser.add_argument("--verbosity", type=int)
    parser.add_argument("--objective", type=str)
    parser.add_argument("--num_round", type=int)
    parser.add_argument("--tree_method", type=str, default="auto")
    # SageMaker specific arguments. Defaults are set in the environment variables.
    parser.add_argument("--output-data-dir", type=str, default=os.environ.get("SM_OUTPUT_DATA_DIR"))
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", type=str, default=os.environ.get("SM_CHANNEL_VALIDATION"))
    args = parser.parse_args()

    dtrain = read_channel(args.train)
    dval = read_channel(args.validation)
    watchlist = [(dtrain, "train"), (dval, "validation")]

    train_hp = {
        "max_depth": args.max_depth,
        "eta": args.eta,
        "gamma": args.gamma,
        "min_child_weight": args.min_child_weight,
        "subsample": args.subsample,
        "verbosity": args.verbosity,
        "objective": args.objective,
        "tree_method": args.tree_method,
        "seed": 0,
    }
    logging.info("training with %s", train_hp)
    bst = xgb.train(params=train_hp, dtrain=dtrain, evals=watchlist, num_boost_round=args.num_round)

    model_location = args.model_dir + "/xgboost-model"
    bst.save_model(model_location)
