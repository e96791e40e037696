"""Serving handlers, as SageMaker's scikit-learn container calls them."""

import io
import json
import os

import joblib
import numpy as np
import pandas as pd


def model_fn(model_dir):
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    with open(os.path.join(model_dir, "features.json")) as f:
        model.kiln_features = json.load(f)
    return model


def input_fn(request_body, request_content_type):
    if request_content_type == "text/csv":
        return pd.read_csv(io.StringIO(request_body), header=None)
    if request_content_type == "application/json":
        return pd.DataFrame(json.loads(request_body))
    raise ValueError(f"unsupported content type {request_content_type}")


def predict_fn(input_data, model):
    input_data.columns = model.kiln_features
    return model.predict(input_data)


def output_fn(prediction, accept):
    if accept == "text/csv":
        return "\n".join(str(p) for p in prediction), accept
    return json.dumps({"predictions": np.asarray(prediction).tolist()}), "application/json"
