"""Reading a channel's files into one float32 feature matrix (and a label), in one pass.

Formats, as SageMaker's built-in algorithms take them:

- ``text/csv`` (the default): headerless CSV, the label in the first column (supervised
  algorithms; unsupervised ones read every column as a feature). Every file of the channel is
  read, in sorted order, with ``pyarrow.csv`` parsing straight to float32.
- with hyperparameter ``target`` set: CSV with a header row, or Parquet files (a Kiln dataset
  materialised as files), the named column being the label and every other column a feature.
- ``application/x-parquet``: Parquet; the label is ``target`` or else the first column.
- ``text/libsvm`` (XGBoost only): LIBSVM lines read into a sparse matrix, indices as given.

Features are filled into a column-major (Fortran-order) float32 matrix, which XGBoost's DMatrix,
LightGBM's Dataset and scikit-learn all take without another copy.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.training.builtin._base import BuiltinError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from kiln.training.builtin._env import TrainingEnv

__all__ = ["Channels", "Classes", "Frame", "content_format", "data_files", "read_channels"]

_CSV = ("text/csv", "csv")
_LIBSVM = ("text/libsvm", "text/x-libsvm", "libsvm")
_PARQUET = ("application/x-parquet", "application/vnd.apache.parquet", "application/parquet", "parquet")


@dataclass
class Frame:
    """One channel's rows: features ``X`` (n × f, float32; SciPy CSR for LIBSVM) and label ``y``."""

    X: Any
    y: np.ndarray | None
    feature_names: list[str] | None = None
    label_name: str | None = None
    weight: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def features(self) -> int:
        return int(self.X.shape[1])


@dataclass
class Channels:
    """The frames an algorithm trains on; ``validation`` and ``test`` are None when not given."""

    train: Frame
    validation: Frame | None = None
    test: Frame | None = None

    def evaluated(self) -> list[tuple[str, Frame]]:
        """(channel, frame) for train and each evaluation channel given, in that order."""
        out = [("train", self.train)]
        out += [(name, f) for name, f in (("validation", self.validation), ("test", self.test)) if f is not None]
        return out


def content_format(channel: str, content_type: str | None, files: list[Path], *, allowed: tuple[str, ...]) -> str:
    """``csv``, ``parquet`` or ``libsvm`` from the channel's ContentType (parameters such as
    ``label_size=1`` ignored), or from the files' suffix when none is given."""
    if content_type is None:
        fmt = "parquet" if files and all(p.suffix.lower() in (".parquet", ".pq") for p in files) else "csv"
    else:
        base = content_type.split(";", 1)[0].strip().lower()
        fmt = "csv" if base in _CSV else "libsvm" if base in _LIBSVM else "parquet" if base in _PARQUET else ""
        if not fmt:
            raise BuiltinError(f"channel {channel} has ContentType {content_type!r}; accepted: {_accepted(allowed)}")
    if fmt not in allowed:
        raise BuiltinError(
            f"channel {channel} is {fmt}, which this algorithm does not read; accepted: "
            f"{_accepted(allowed)}"
        )
    return fmt


def _accepted(allowed: tuple[str, ...]) -> str:
    names = {"csv": "text/csv", "parquet": "application/x-parquet", "libsvm": "text/libsvm"}
    return ", ".join(names[a] for a in allowed)


def data_files(channel: str, folder: Path) -> list[Path]:
    """The channel's data files, sorted; names starting with ``.`` or ``_`` are skipped, as
    SageMaker's containers do (``_SUCCESS``, ``.crc``)."""
    if not folder.is_dir():
        raise BuiltinError(f"channel {channel} has no folder at {folder}")
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    if not files:
        raise BuiltinError(f"channel {channel} has no files (looked in {folder})")
    return files


def read_channels(env: TrainingEnv, *, channels: tuple[str, ...], supervised: bool, target: str | None,
                  formats: tuple[str, ...] = ("csv", "parquet"), weights: bool = False) -> Channels:
    """Read every channel the job gives.

    With several hosts, each host reads only its shard of the train files (sorted, file ``i``
    when ``i % hosts == host index``); validation and test are read whole.

    Raises:
        BuiltinError: an unknown or missing channel, no files, unreadable rows, a missing
            ``target`` column, non-numeric features or missing labels.
    """
    unknown = sorted(set(env.channels) - set(channels))
    if unknown:
        raise BuiltinError(
            f"channel {unknown[0]} is not read by this algorithm; its channels are: "
            f"{', '.join(channels)}"
        )
    if "train" not in env.channels:
        raise BuiltinError("channel train is required: give the training data as the train channel")
    frames: dict[str, Frame] = {}
    for name in [c for c in channels if c in env.channels]:
        files = data_files(name, env.channels[name])
        if name == "train" and len(env.hosts) > 1:
            # Each host reads its own shard: xgboost and lightgbm then reduce across the hosts
            # (_collective); the other built-ins train algo-1's model on algo-1's shard alone.
            files = [f for i, f in enumerate(files) if i % len(env.hosts) == env.host_index]
            if not files:
                raise BuiltinError(
                    f"channel train has fewer files than the {len(env.hosts)} hosts; give at least "
                    "one file per host"
                )
        fmt = content_format(name, env.content_types.get(name), files, allowed=formats)
        n_features = frames["train"].features if fmt == "libsvm" and "train" in frames else None
        frames[name] = _read(name, files, fmt, supervised=supervised, target=target, weights=weights, n_features=n_features)
    train = frames["train"]
    for name, frame in frames.items():
        if name != "train" and frame.features != train.features:
            raise BuiltinError(
                f"channel {name} has {frame.features} features but train has {train.features}; give "
                "both the same columns"
            )
        if name != "train" and train.feature_names and frame.feature_names != train.feature_names:
            raise BuiltinError(f"channel {name} has columns {frame.feature_names} but train has {train.feature_names}")
    return Channels(train=train, validation=frames.get("validation"), test=frames.get("test"))


def _read(channel: str, files: list[Path], fmt: str, *, supervised: bool, target: str | None, weights: bool,
          n_features: int | None) -> Frame:
    if fmt == "libsvm":
        return _read_libsvm(channel, files, n_features)
    if weights and (target is not None or fmt != "csv"):
        raise BuiltinError(
            "hyperparameter csv_weights=1 applies to headerless CSV (label, weight, features); "
            "unset it or target"
        )
    tables = _tables(channel, files, fmt, header=target is not None, supervised=supervised)
    if not tables:
        raise BuiltinError(f"channel {channel} has no rows (its {len(files)} file(s) are empty)")
    names = tables[0][1].column_names
    for path, table in tables[1:]:
        if table.column_names != names:
            raise BuiltinError(
                f"channel {channel}: {path.name} has columns {table.column_names[:8]} but "
                f"{tables[0][0].name} has {names[:8]}"
            )
    if not supervised:
        if target is not None:
            raise BuiltinError("hyperparameter target does not apply: this algorithm is unsupervised")
        label_col, weight_col = None, None
    elif target is not None:
        if target not in names and all(_is_number(n) for n in names):
            raise BuiltinError(f"channel {channel}: with hyperparameter target set, CSV needs a header row naming the columns, "
                               f"but the first line of {tables[0][0].name} is numbers; add the header, or unset target for "
                               "headerless CSV with the label in the first column")
        if target not in names:
            raise BuiltinError(f"column {target!r} not found in channel {channel}; columns are: {', '.join(names)}")
        label_col, weight_col = target, None
    else:
        label_col, weight_col = names[0], (names[1] if weights else None)
    feature_cols = [c for c in names if c not in (label_col, weight_col)]
    if not feature_cols:
        raise BuiltinError(f"channel {channel} has no feature columns besides the label")
    X = _fill_features(channel, tables, feature_cols)
    y = _column(channel, tables, label_col, what="label") if label_col is not None else None
    w = _column(channel, tables, weight_col, what="weight") if weight_col is not None else None
    header = target is not None or fmt == "parquet"
    return Frame(X=X, y=y, weight=w, feature_names=feature_cols if header else None,
                 label_name=label_col if header else None)


def _tables(channel: str, files: list[Path], fmt: str, *, header: bool, supervised: bool) -> list[tuple[Path, pa.Table]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out: list[tuple[Path, pa.Table]] = []
    read_opts = convert = parse = None
    for path in files:
        if fmt == "parquet":
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                raise BuiltinError(
                    f"channel {channel}: {path.name} is not a readable Parquet file "
                    f"({_first_line(exc)})"
                ) from None
        else:
            first = _first_line_of(path)
            if first is None:
                continue  # an empty file adds no rows
            if parse is None:
                delimiter = _delimiter(first)
                parse = pacsv.ParseOptions(delimiter=delimiter)
                if not header:
                    width = len(next(csv.reader(io.StringIO(first), delimiter=delimiter)))
                    _refuse_header(channel, path, first, delimiter, supervised=supervised)
                    names = [f"_c{i}" for i in range(width)]
                    read_opts = pacsv.ReadOptions(column_names=names)
                    # Parsed straight to float32: no float64 table, no cast afterwards.
                    convert = pacsv.ConvertOptions(column_types={n: pa.float32() for n in names})
            try:
                table = pacsv.read_csv(path, read_options=read_opts, parse_options=parse, convert_options=convert)
            except pa.ArrowInvalid as exc:
                raise BuiltinError(
                    f"channel {channel}: {path.name} is not readable as CSV: {_first_line(exc)}"
                ) from None
        if table.num_rows:
            out.append((path, table))
    return out


def _first_line_of(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.readline(1 << 20)
    text = head.decode("utf-8", "replace").strip("\r\n")
    return text if text.strip() else None


def _delimiter(line: str) -> str:
    try:
        return csv.Sniffer().sniff(line, delimiters=",\t;| ").delimiter
    except csv.Error:
        return ","


def _refuse_header(channel: str, path: Path, first: str, delimiter: str, *, supervised: bool) -> None:
    cells = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    words = [c for c in cells if c.strip() and not _is_number(c)]
    if words and len(words) >= len(cells) // 2:
        fix = (
            "headerless CSV carries the label in the first column: set hyperparameter target to the label "
            "column's name, or drop the header"
            if supervised else "this algorithm reads headerless CSV: drop the header, or give the data as Parquet"
        )
        raise BuiltinError(
            f"channel {channel}: {path.name} starts with a header row ({', '.join(words[:4])}...); "
            f"{fix}"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _numeric(channel: str, name: str, column: pa.ChunkedArray) -> None:
    import pyarrow.types as pat

    t = column.type
    if not (pat.is_integer(t) or pat.is_floating(t) or pat.is_boolean(t) or pat.is_decimal(t) or pat.is_null(t)):
        raise BuiltinError(
            f"channel {channel}: column {name!r} is {t}, not a number; built-in algorithms take numeric features "
            "only: encode it first (a Kiln prep recipe does) or drop it"
        )


def _fill_features(channel: str, tables: list[tuple[Path, pa.Table]], cols: list[str]) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    rows = sum(t.num_rows for _, t in tables)
    # Column-major: each source column is one contiguous write; X is the transpose's view.
    out = np.empty((len(cols), rows), dtype=np.float32)
    for j, name in enumerate(cols):
        offset = 0
        for _, table in tables:
            column = table.column(name)
            _numeric(channel, name, column)
            if not pa.types.is_floating(column.type):
                column = column.cast(pa.float64())
            for chunk in column.chunks:
                n = len(chunk)
                out[j, offset:offset + n] = chunk.to_numpy(zero_copy_only=False)
                offset += n
    return out.T


def _column(channel: str, tables: list[tuple[Path, pa.Table]], name: str, *, what: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    column = pa.chunked_array([c for _, t in tables for c in t.column(name).chunks], type=tables[0][1].column(name).type)
    nulls = column.null_count
    if nulls:
        raise BuiltinError(
            f"channel {channel}: the {what} column {name!r} has {nulls} missing value(s); drop or "
            "fill those rows"
        )
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type):
        if what != "label":
            raise BuiltinError(f"channel {channel}: the {what} column {name!r} must be numeric, it is {column.type}")
        return np.asarray(column.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    _numeric(channel, name, column)
    if pa.types.is_decimal(column.type) or pa.types.is_boolean(column.type):
        column = column.cast(pa.float64())  # numbers, not Decimal objects; True/False as 1/0
    return column.to_numpy()


def _read_libsvm(channel: str, files: list[Path], n_features: int | None) -> Frame:
    import numpy as np
    import scipy.sparse as sp
    from sklearn.datasets import load_svmlight_file

    parts = []
    for path in files:
        try:
            # zero_based=True keeps the indices as written, as XGBoost's own LIBSVM parser does.
            X, y = load_svmlight_file(str(path), n_features=n_features, zero_based=True, dtype=np.float32)
        except ValueError as exc:
            raise BuiltinError(
                f"channel {channel}: {path.name} is not readable as LIBSVM: {_first_line(exc)}"
            ) from None
        parts.append((X, y))
    width = n_features or max(X.shape[1] for X, _ in parts)
    X = sp.vstack([sp.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], width)) for x, _ in parts], format="csr")
    y = np.concatenate([y for _, y in parts]).astype(np.float32)
    if X.shape[0] == 0:
        raise BuiltinError(f"channel {channel} has no rows")
    return Frame(X=X, y=y)


@dataclass
class Classes:
    """A classifier's classes and how labels map onto the codes ``0..k-1`` the libraries need.

    String labels are always encoded (classes sorted). Numeric labels are encoded too, unless
    ``index_labels`` is set: then, as SageMaker's XGBoost and linear learner require, they must
    already be the integers ``0..k-1`` and are passed through.
    """

    values: list[Any]
    encoded: bool

    @classmethod
    def fit(cls, y: np.ndarray, *, index_labels: bool, num_classes: int | None = None) -> Classes:
        import numpy as np

        if y.dtype == object:
            return cls(values=sorted({str(v) for v in y}), encoded=True)
        if not index_labels:
            return cls(values=[v.item() for v in np.unique(y)], encoded=True)
        if y.size and (not np.all(np.mod(y, 1) == 0) or y.min() < 0):
            bad = next(v for v in np.unique(y) if v < 0 or v % 1)
            raise BuiltinError(
                f"class labels must be the integers 0..k-1; found {bad.item()!r} (string labels are "
                "encoded automatically)"
            )
        k = num_classes if num_classes is not None else (int(y.max()) + 1 if y.size else 0)
        return cls(values=list(range(max(k, 2))), encoded=False)

    def codes(self, y: np.ndarray, channel: str) -> np.ndarray:
        """Labels as float32 class codes; a label the classes lack is an error naming it."""
        import numpy as np

        if not self.encoded:
            codes = y.astype(np.float32, copy=False)
            over = codes >= len(self.values)
            if over.any():
                raise BuiltinError(
                    f"channel {channel}: label {codes[over][0]:g} is outside "
                    f"0..{len(self.values) - 1} (num_class is {len(self.values)})"
                )
            return codes
        if y.dtype == object or isinstance(self.values[0], str):
            keys, table = y.astype(str), np.asarray(self.values, dtype=str)
        else:
            keys, table = y, np.asarray(self.values, dtype=y.dtype)
        idx = np.searchsorted(table, keys)
        idx = np.clip(idx, 0, len(table) - 1)
        wrong = table[idx] != keys
        if np.any(wrong):
            raise BuiltinError(
                f"channel {channel}: label {keys[wrong][0]!r} is not among the train channel's "
                f"classes {self.values[:10]}"
            )
        return idx.astype(np.float32)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self.values)[codes.astype(np.int64)]
