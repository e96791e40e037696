"""Features and labels in separate channels (`features`, `labels`), a Ridge model
pickled as model.pkl; no model_fn, so the model folder decides how it loads."""

import argparse
import os
import pickle

import pandas as pd
from sklearn.linear_model import Ridge

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=1.0)
parser.add_argument("--fit_intercept", type=lambda s: s.lower() == "true", default=True)
parser.add_argument("--model_dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--features", default=os.environ["SM_CHANNEL_FEATURES"])
parser.add_argument("--labels", default=os.environ["SM_CHANNEL_LABELS"])
args = parser.parse_args()

X = pd.read_csv(os.path.join(args.features, "X.csv"))
y = pd.read_csv(os.path.join(args.labels, "y.csv"))["target"]

model = Ridge(alpha=args.alpha, fit_intercept=args.fit_intercept).fit(X.to_numpy(), y)
print("r2:", model.score(X.to_numpy(), y))

with open(os.path.join(args.model_dir, "model.pkl"), "wb") as out:
    pickle.dump(model, out)
