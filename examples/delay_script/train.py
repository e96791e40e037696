"""A SageMaker script-mode training script, as SageMaker's own examples write them: it runs
unchanged on SageMaker and as a Kiln training job (`make demo` runs it)."""

import argparse
import glob
import os

import joblib
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split


def model_fn(model_dir):
    """Load the model for serving (SageMaker's inference handler)."""
    return joblib.load(os.path.join(model_dir, "model.joblib"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--target", type=str, default="late")
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    args = parser.parse_args()

    frame = pd.concat(pd.read_csv(f) for f in sorted(glob.glob(os.path.join(args.train, "*.csv"))))
    y = frame.pop(args.target)
    X_train, X_val, y_train, y_val = train_test_split(frame, y, test_size=0.2, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=args.max_iter, learning_rate=args.learning_rate, random_state=0)
    model.fit(X_train, y_train)
    print(f"validation-auc={roc_auc_score(y_val, model.predict_proba(X_val)[:, 1]):.4f}")
    print(f"validation-accuracy={model.score(X_val, y_val):.4f}")
    joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
