"""One transform_fn does decoding, prediction and encoding."""

import io
import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "knn.joblib"))


def transform_fn(model, request_body, content_type, accept):
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}")
    rows = np.loadtxt(io.StringIO(request_body), delimiter=",", ndmin=2)
    return json.dumps({"predictions": model.predict(rows).tolist()}), "application/json"
