"""Reading a user's own table of numbers (CSV/TSV text, ``.npy`` or Parquet) for fitting.

>>> X, y, names = read_table("points.csv", label_column="label")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["TABLE_EXTENSIONS", "read_table"]

_TEXT = (".csv", ".tsv", ".txt", ".dat")
_NPY = (".npy",)
_PARQUET = (".parquet", ".pq")
TABLE_EXTENSIONS = _TEXT + _NPY + _PARQUET


def read_table(
    path: str | os.PathLike[str], *, label_column: int | str | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read a table of numbers, optionally splitting off a label column.

    Parameters
    ----------
    path : path
        A ``.csv``/``.tsv``/``.txt``/``.dat`` text table (delimiter ``,``, ``;`` or tab, detected;
        the first row is a header when it has a non-numeric cell above a numeric one, or when it has
        only non-numeric cells), a 2-D numeric ``.npy`` array (read without pickles) or a
        ``.parquet`` file (needs pyarrow).
    label_column : int or str, optional
        The column holding true labels, by 0-based index (negative counts from the end) or by
        header name. It is removed from the features.

    Returns
    -------
    X : ndarray of float32, shape (N, D)
    y : ndarray or None
        The labels, int64 when every label is an integer, else strings; None without
        ``label_column``.
    feature_names : list of str
        Header names, or ``x0``, ``x1``, ... (numbered by original column) without a header.

    Raises
    ------
    ValueError
        Unknown extension, empty file, ragged rows, non-numeric or non-finite feature cells
        (the message names the file, line and column), unknown label column.
    FileNotFoundError
        When ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such file: {path}")
    ext = path.suffix.lower()
    if ext in _TEXT:
        return _read_text(path, label_column)
    if ext in _NPY:
        return _read_npy(path, label_column)
    if ext in _PARQUET:
        return _read_parquet(path, label_column)
    raise ValueError(
        f"{path}: unknown file type {ext or '(no extension)'!r}; use one of {', '.join(TABLE_EXTENSIONS)}."
    )


# ----------------------------------------------------------------------------------------------


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _resolve_label(
    label_column: int | str | None, names: list[str], has_names: bool, path: Path
) -> int | None:
    """0-based index of the label column among ``names``."""
    if label_column is None:
        return None
    n = len(names)
    if isinstance(label_column, str) and label_column in names:
        return names.index(label_column)
    numeric = isinstance(label_column, str) and label_column.lstrip("-").isdigit()
    if isinstance(label_column, str) and not numeric:
        if not has_names:
            raise ValueError(
                f"{path}: label column {label_column!r} given by name, but the file has no header; "
                "give its 0-based index instead."
            )
        raise ValueError(f"{path}: no column named {label_column!r}; the columns are {names}.")
    index = int(label_column)
    if not -n <= index < n:
        raise ValueError(f"{path}: label column index {index} is out of range for {n} columns.")
    return index % n


def _labels(values: list) -> np.ndarray:
    """int64 when all labels are integers (``"3"``, ``3.0``), else strings."""
    try:
        as_float = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([str(v) for v in values])
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return np.array([str(v) for v in values])


def _split(table: np.ndarray, label_idx: int | None) -> tuple[np.ndarray, list[int]]:
    keep = [j for j in range(table.shape[1]) if j != label_idx]
    return table[:, keep], keep


def _check_finite(X: np.ndarray, names: list[str], path: Path, where: Callable[[int], str]) -> None:
    """Reject NaN and infinite features, naming the first offending cell (``where(i)`` names row i)."""
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"{path}: {where(i)}, column {names[j]!r} holds {X[i, j]}; features must be finite numbers."
        )


def _row(i: int) -> str:
    return f"row {i} (0-based)"


def _read_text(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path} is empty.")
    sample = "\n".join(text.splitlines()[:20])
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        cells = [c.strip() for c in row]
        if not any(cells):
            continue  # blank line
        rows.append(cells)
        lines.append(reader.line_num)
    width = len(rows[0])
    for cells, line in zip(rows, lines, strict=False):
        if len(cells) != width:
            raise ValueError(
                f"{path}: line {line} has {len(cells)} fields but line {lines[0]} has {width}; "
                "every row needs the same number of columns."
            )
    first = rows[0]
    if len(rows) > 1:
        second = rows[1]
        has_header = all(not _is_number(c) for c in first) or any(
            not _is_number(a) and _is_number(b) for a, b in zip(first, second, strict=False)
        )
    else:
        has_header = not all(_is_number(c) for c in first)
    if has_header:
        names, rows, lines = first, rows[1:], lines[1:]
        if not rows:
            raise ValueError(f"{path} has a header but no data rows.")
    else:
        names = [f"x{j}" for j in range(width)]
    label_idx = _resolve_label(label_column, names, has_header, path)
    labels = None if label_idx is None else _labels([r[label_idx] for r in rows])
    keep = [j for j in range(width) if j != label_idx]
    if not keep:
        raise ValueError(f"{path}: no feature columns are left besides the label column.")
    feats = [[r[j] for j in keep] for r in rows]
    try:
        X = np.array(feats, dtype=np.float64)
    except ValueError:
        for cells, line in zip(feats, lines, strict=False):
            for k, cell in enumerate(cells):
                if not _is_number(cell):
                    j = keep[k]
                    what = "is empty" if cell == "" else f"holds {cell!r}, not a number"
                    raise ValueError(
                        f"{path}: line {line}, column {names[j]!r} (index {j}) {what}."
                    ) from None
        raise
    _check_finite(X, [names[j] for j in keep], path, lambda i: f"line {lines[i]}")
    return X.astype(np.float32), labels, [names[j] for j in keep]


def _read_npy(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path} is not a plain numeric .npy array ({exc}).") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: array of dtype {arr.dtype}; expected numbers.")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{path}: array of shape {arr.shape}; expected a 2-D table (rows x columns).")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{path} is empty (shape {arr.shape}).")
    names = [f"x{j}" for j in range(arr.shape[1])]
    label_idx = _resolve_label(label_column, names, False, path)
    labels = None if label_idx is None else _labels(arr[:, label_idx].tolist())
    X, keep = _split(arr.astype(np.float64, copy=False), label_idx)
    if not keep:
        raise ValueError(f"{path}: no feature columns are left besides the label column.")
    names = [names[j] for j in keep]
    _check_finite(X, names, path, _row)
    return X.astype(np.float32), labels, names


def _read_parquet(
    path: Path, label_column: int | str | None
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is installed in development
        raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install 'flowmix[parquet]').") from exc
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path} is not a readable Parquet file ({exc}).") from exc
    names = list(table.column_names)
    if not names or table.num_rows == 0:
        raise ValueError(f"{path} is empty ({table.num_rows} rows, {len(names)} columns).")
    label_idx = _resolve_label(label_column, names, True, path)
    labels = None
    if label_idx is not None:
        col = table.column(label_idx)
        if col.null_count:
            raise ValueError(
                f"{path}: label column {names[label_idx]!r} has {col.null_count} missing values."
            )
        labels = _labels(col.to_pylist())
    keep = [j for j in range(len(names)) if j != label_idx]
    if not keep:
        raise ValueError(f"{path}: no feature columns are left besides the label column.")
    columns = []
    for j in keep:
        col = table.column(j)
        if not (
            pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
        ):
            raise ValueError(
                f"{path}: column {names[j]!r} (index {j}) has type {col.type}; features must be numbers."
            )
        if col.null_count:
            first_null = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(
                f"{path}: column {names[j]!r} (index {j}) has a missing value in {_row(first_null)} "
                f"({col.null_count} in all); features must be numbers."
            )
        columns.append(col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    X = np.column_stack(columns)
    names = [names[j] for j in keep]
    _check_finite(X, names, path, _row)
    return X.astype(np.float32), labels, names
