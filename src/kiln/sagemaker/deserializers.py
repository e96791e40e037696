"""SageMaker's ``sagemaker.deserializers``: how ``Predictor.predict`` decodes the answer.

Each ``deserialize(stream, content_type)`` reads a file-like ``stream``, as SageMaker's do.
"""

from __future__ import annotations

import csv
import io
import json
from typing import IO, Any

__all__ = ["BaseDeserializer", "BytesDeserializer", "CSVDeserializer", "JSONDeserializer", "NumpyDeserializer", "StringDeserializer"]


class BaseDeserializer:
    ACCEPT: tuple[str, ...] = ("*/*",)

    @property
    def accept(self) -> tuple[str, ...]:
        return self.ACCEPT

    def deserialize(self, stream: IO[bytes], content_type: str) -> Any:
        raise NotImplementedError


class BytesDeserializer(BaseDeserializer):
    def __init__(self, accept: str | tuple[str, ...] = "*/*") -> None:
        self.ACCEPT = (accept,) if isinstance(accept, str) else tuple(accept)

    def deserialize(self, stream: IO[bytes], content_type: str) -> bytes:
        return stream.read()


class StringDeserializer(BaseDeserializer):
    def __init__(self, encoding: str = "UTF-8", accept: str | tuple[str, ...] = "application/json") -> None:
        self.encoding = encoding
        self.ACCEPT = (accept,) if isinstance(accept, str) else tuple(accept)

    def deserialize(self, stream: IO[bytes], content_type: str) -> str:
        return stream.read().decode(self.encoding)


class JSONDeserializer(BaseDeserializer):
    def __init__(self, accept: str | tuple[str, ...] = "application/json") -> None:
        self.ACCEPT = (accept,) if isinstance(accept, str) else tuple(accept)

    def deserialize(self, stream: IO[bytes], content_type: str) -> Any:
        return json.loads(stream.read())


class CSVDeserializer(BaseDeserializer):
    """Rows of strings, as SageMaker's."""

    def __init__(self, encoding: str = "utf-8", accept: str | tuple[str, ...] = "text/csv") -> None:
        self.encoding = encoding
        self.ACCEPT = (accept,) if isinstance(accept, str) else tuple(accept)

    def deserialize(self, stream: IO[bytes], content_type: str) -> list[list[str]]:
        return [row for row in csv.reader(io.StringIO(stream.read().decode(self.encoding)))]


class NumpyDeserializer(BaseDeserializer):
    """A numpy array from ``.npy``, JSON or CSV. Unlike SageMaker's, ``allow_pickle`` is False
    by default: Kiln loads no pickle from outside unless told to."""

    def __init__(self, dtype: Any = None, accept: str | tuple[str, ...] = "application/x-npy", allow_pickle: bool = False) -> None:
        self.dtype = dtype
        self.allow_pickle = allow_pickle
        self.ACCEPT = (accept,) if isinstance(accept, str) else tuple(accept)

    def deserialize(self, stream: IO[bytes], content_type: str) -> Any:
        import numpy as np

        data = stream.read()
        ctype = (content_type or "").split(";")[0].strip()
        if ctype == "application/json":
            return np.array(json.loads(data), dtype=self.dtype)
        if ctype == "text/csv":
            return np.genfromtxt(io.StringIO(data.decode()), delimiter=",", dtype=self.dtype)
        return np.load(io.BytesIO(data), allow_pickle=self.allow_pickle)
