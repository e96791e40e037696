"""SageMaker's ``sagemaker.serializers``: how ``Predictor.predict`` encodes its data."""

from __future__ import annotations

import io
import json
from typing import Any

__all__ = ["BaseSerializer", "CSVSerializer", "IdentitySerializer", "JSONSerializer", "NumpySerializer"]


class BaseSerializer:
    CONTENT_TYPE = "application/octet-stream"

    @property
    def content_type(self) -> str:
        return self.CONTENT_TYPE

    def serialize(self, data: Any) -> bytes | str:
        raise NotImplementedError


class IdentitySerializer(BaseSerializer):
    """The data as it is (bytes or str), with the content type given."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        self.CONTENT_TYPE = content_type

    def serialize(self, data: Any) -> bytes | str:
        return data  # type: ignore[no-any-return]


def _plain(data: Any) -> Any:
    if hasattr(data, "to_numpy"):  # pandas
        data = data.to_numpy()
    if hasattr(data, "tolist"):
        return data.tolist()
    return data


class CSVSerializer(BaseSerializer):
    """Rows as CSV lines (a 1-D sequence is one row); a str goes as it is."""

    def __init__(self, content_type: str = "text/csv") -> None:
        self.CONTENT_TYPE = content_type

    def serialize(self, data: Any) -> bytes | str:
        if isinstance(data, (str, bytes)):
            return data
        rows = _plain(data)
        if not isinstance(rows, (list, tuple)):
            return str(rows)
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        return "\n".join(",".join(str(v) for v in row) for row in rows)


class JSONSerializer(BaseSerializer):
    """JSON (numpy arrays and pandas frames as lists)."""

    def __init__(self, content_type: str = "application/json") -> None:
        self.CONTENT_TYPE = content_type

    def serialize(self, data: Any) -> bytes | str:
        if isinstance(data, (str, bytes)):
            return data
        if isinstance(data, dict):
            return json.dumps({k: _plain(v) for k, v in data.items()})
        return json.dumps(_plain(data))


class NumpySerializer(BaseSerializer):
    """A ``.npy`` array (no pickled objects)."""

    def __init__(self, dtype: Any = None, content_type: str = "application/x-npy") -> None:
        self.dtype = dtype
        self.CONTENT_TYPE = content_type

    def serialize(self, data: Any) -> bytes | str:
        import numpy as np

        if isinstance(data, bytes):
            return data
        array = np.asarray(_plain(data) if not isinstance(data, np.ndarray) else data, dtype=self.dtype)
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue()
