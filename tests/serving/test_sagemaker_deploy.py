"""``kiln.sagemaker``'s deploy(): Model and Estimator to an endpoint, the Predictor, and
SageMaker's serializers and deserializers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln.core.errors import InvalidArgument, NotFound, PermissionDenied
from kiln.sagemaker import DataCaptureConfig, Model, Predictor, ServerlessInferenceConfig, SKLearn
from kiln.sagemaker.deserializers import BytesDeserializer, CSVDeserializer, JSONDeserializer, NumpyDeserializer, StringDeserializer
from kiln.sagemaker.serializers import CSVSerializer, IdentitySerializer, JSONSerializer, NumpySerializer

from .conftest import custom_model

pytestmark = pytest.mark.xdist_group("endpoints")


def test_model_deploy_predict_update_delete(client: kiln.Client, models: dict[str, str]) -> None:
    capture = DataCaptureConfig(enable_capture=True, sampling_percentage=50, destination_s3_uri="s3://ignored/", capture_options=["REQUEST"])
    predictor = Model(model_data="times@1", role="arn:aws:iam::1:role/x", client=client).deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name="sm-ep", serializer=JSONSerializer(),
        deserializer=JSONDeserializer(), data_capture_config=capture, serverless_inference_config=ServerlessInferenceConfig(),
    )
    assert isinstance(predictor, Predictor) and predictor.endpoint_name == "sm-ep"
    assert predictor.predict(np.array([[1.0, 2.0]])) == [9.0]
    assert predictor.predict([[1]], target_variant="AllTraffic", initial_args={"CustomAttributes": "a=1"}) == [3.0]
    ep = predictor.describe_endpoint()
    assert (ep.state, ep.capture["enabled"], ep.capture["percent"], ep.capture["modes"]) == ("InService", True, 50.0, ["Input"])
    assert ep.serverless == {"memory_mb": 2048, "max_concurrency": 5, "idle_timeout_s": 300.0}
    assert predictor.update_endpoint(model_name="times@2").generation == 2
    assert predictor.predict([[1]]) == [5.0]
    predictor.delete_endpoint()
    assert client.endpoints.list() == []


def test_model_from_a_local_folder_needs_an_admins_trust(client: kiln.Client, tmp_path: Path) -> None:
    folder = custom_model(tmp_path / "pkg")
    entry = folder / "code" / "inference.py"
    src = tmp_path / "src"
    src.mkdir()
    (src / "serve.py").write_text(entry.read_text())
    entry.unlink()
    with pytest.raises(PermissionDenied, match="kiln models trust local-model@1"):
        Model(model_data=str(folder), entry_point="serve.py", source_dir=str(src), name="local-model", client=client).deploy(endpoint_name="local")
    assert client.models.get_version("local-model@1").flavor == "custom"
    client.models.trust("local-model@1")
    predictor = Model(model_data="local-model@1", client=client).deploy(endpoint_name="local", serializer=JSONSerializer(), deserializer=JSONDeserializer())
    assert predictor.predict([[2]]) == [6.0]


def test_deploy_refuses_what_it_cannot_serve(client: kiln.Client) -> None:
    with pytest.raises(InvalidArgument, match="call fit"):
        SKLearn(entry_point="train.py", client=client).deploy()
    with pytest.raises(NotFound):
        Model(model_data="no such/path", client=client).deploy()
    with pytest.raises(InvalidArgument, match="initial_instance_count"):
        Model(model_data="times@1", client=client).deploy(initial_instance_count=0)


def test_estimator_fit_then_deploy(client: kiln.Client, tmp_path: Path) -> None:
    from tests.training.harness import SCRIPTS, csv_label_first

    iris = tmp_path / "iris"
    iris.mkdir()
    csv_label_first("iris", files=1)(iris)
    est = SKLearn(entry_point="train.py", source_dir=str(SCRIPTS / "sklearn_iris"), hyperparameters={"max_leaf_nodes": 8}, client=client)
    est.fit({"train": str(iris)}, logs=False)
    predictor = est.deploy(initial_instance_count=1, instance_type="ml.m5.large")
    assert predictor.endpoint_name == est.latest_training_job.name
    assert isinstance(predictor.serializer, NumpySerializer) and isinstance(predictor.deserializer, NumpyDeserializer)
    got = predictor.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    assert got.shape == (2,)
    predictor.delete_endpoint()


@pytest.mark.parametrize(("serializer", "data", "want", "ctype"), [
    (CSVSerializer(), [[1, 2], [3, 4.5]], "1,2\n3,4.5", "text/csv"),
    (CSVSerializer(), np.array([1, 2]), "1,2", "text/csv"),
    (CSVSerializer(), "a,b", "a,b", "text/csv"),
    (JSONSerializer(), np.array([[1, 2]]), "[[1, 2]]", "application/json"),
    (JSONSerializer(), {"instances": np.array([1])}, '{"instances": [1]}', "application/json"),
    (IdentitySerializer("text/plain"), b"raw", b"raw", "text/plain"),
])
def test_serializers(serializer, data, want, ctype) -> None:  # type: ignore[no-untyped-def]
    assert (serializer.serialize(data), serializer.CONTENT_TYPE) == (want, ctype)


def test_numpy_round_trip_and_deserializers() -> None:
    body = NumpySerializer().serialize([[1.0, 2.0]])
    np.testing.assert_array_equal(NumpyDeserializer().deserialize(io.BytesIO(body), "application/x-npy"), [[1.0, 2.0]])
    np.testing.assert_array_equal(NumpyDeserializer().deserialize(io.BytesIO(b"[1, 2]"), "application/json"), [1, 2])
    assert CSVDeserializer().deserialize(io.BytesIO(b"1,2\n3,4"), "text/csv") == [["1", "2"], ["3", "4"]]
    assert JSONDeserializer().deserialize(io.BytesIO(b'{"a": 1}'), "application/json") == {"a": 1}
    assert StringDeserializer().deserialize(io.BytesIO(b"hi"), "text/plain") == "hi"
    assert BytesDeserializer().deserialize(io.BytesIO(b"\x00"), "x") == b"\x00"
    assert (JSONDeserializer().ACCEPT, NumpyDeserializer().ACCEPT, BytesDeserializer().ACCEPT) == (("application/json",), ("application/x-npy",), ("*/*",))
    with pytest.raises(ValueError):  # no pickle from outside unless asked
        NumpyDeserializer().deserialize(io.BytesIO(_pickled()), "application/x-npy")


def _pickled() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()
