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
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        raise ValueError(
            f"{path}: no column named {label_column!r}; the columns are {names}. Name one of these, or "
            "give a 0-based index."
        )
    index = int(label_column)
    if not -n <= index < n:
        raise ValueError(
            f"{path}: label column index {index} is out of range for {n} columns. Give an index from {-n} to {n - 1}."
        )
    return index % n


def _labels(values: list) -> np.ndarray:
    """int64 when all labels are integers (``"3"``, ``3.0``), else strings."""
    try:
        as_float = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([str(v) for v in values])
    # Integers only up to 2**53, where floats hold them exactly (and far from int64's overflow).
    if np.all(np.abs(as_float) <= 2**53) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    return np.array([str(v) for v in values])


def _split(table: np.ndarray, label_idx: int | None) -> tuple[np.ndarray, list[int]]:
    keep = [j for j in range(table.shape[1]) if j != label_idx]
    return table[:, keep], keep


def _check_finite(X: np.ndarray, names: list[str], path: Path, where: Callable[[int], str]) -> None:
    """Reject NaN, infinite and float32-overflowing features, naming the first offending cell.

    ``X`` is float64; the table is returned as float32, where values beyond about 3.4e38 would
    become infinite. ``where(i)`` names row i.
    """
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(X) | (np.abs(X) > _FLOAT32_MAX)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        if np.isfinite(X[i, j]):
            raise ValueError(
                f"{path}: {where(i)}, column {names[j]!r} holds {X[i, j]:g}, beyond the float32 range "
                f"(about +-{_FLOAT32_MAX:.3g}) that features are read into; rescale that column first "
                "(e.g. divide it by a power of ten)."
            )
        raise ValueError(
            f"{path}: {where(i)}, column {names[j]!r} holds {X[i, j]}; features must be finite numbers. "
            "Drop or fill in that row first."
        )


def _row(i: int) -> str:
    return f"row {i} (0-based)"


def _read_text(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save the table as UTF-8 CSV, "
            "or as .npy or .parquet."
        ) from None
    if not text.strip():
        raise ValueError(f"{path} is empty. Pass a table with one row of numbers per line.")
    sample = "\n".join(text.splitlines()[:20])
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if not any(cells):
                continue  # blank line
            rows.append(cells)
            lines.append(reader.line_num)
    except csv.Error as err:  # a field over csv's size limit, a stray quote or line break, ...
        raise ValueError(
            f"{path}: line {reader.line_num} cannot be read as a table row ({err}); check the file's "
            "delimiters and quotes."
        ) from None
    if not rows:
        raise ValueError(f"{path} holds no values (only empty cells); put one row of numbers per line.")
    width = len(rows[0])
    for cells, line in zip(rows, lines, strict=False):
        if len(cells) != width:
            raise ValueError(
                f"{path}: line {line} has {len(cells)} fields but line {lines[0]} has {width}; "
                "every row needs the same number of columns. Fix those rows, or check the delimiter."
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
            raise ValueError(f"{path} has a header but no data rows. Add rows of numbers below the header.")
    else:
        names = [f"x{j}" for j in range(width)]
    label_idx = _resolve_label(label_column, names, has_header, path)
    labels = None if label_idx is None else _labels([r[label_idx] for r in rows])
    keep = [j for j in range(width) if j != label_idx]
    if not keep:
        raise ValueError(
            f"{path}: no feature columns are left besides the label column. The table needs at least "
            "one column of features: name another label column, or add feature columns."
        )
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
                        f"{path}: line {line}, column {names[j]!r} (index {j}) {what}. Fix that cell, or "
                        "drop the column (a column of labels can be named as the label column)."
                    ) from None
        raise
    _check_finite(X, [names[j] for j in keep], path, lambda i: f"line {lines[i]}")
    return X.astype(np.float32), labels, [names[j] for j in keep]


def _read_npy(path: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    try:
        # Memory-mapped first: a header that claims more data than the file holds is refused
        # here ("mmap length is greater than file size") instead of allocating what it claims.
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise ValueError(
            f"{path} is not a plain numeric .npy array ({exc}); write one with numpy.save(path, X)."
        ) from exc
    if not isinstance(mapped, np.ndarray):  # an .npz archive under a .npy name
        mapped.close()
        raise ValueError(
            f"{path} is an .npz archive, not a .npy array; save a single array with numpy.save(path, X)."
        )
    arr = np.array(mapped)
    del mapped
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: array of dtype {arr.dtype}; expected numbers. Save a numeric array, e.g. "
            "numpy.save(path, X.astype(float))."
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{path}: array of shape {arr.shape}; expected a 2-D table (rows x columns). Save it "
            "reshaped, e.g. X.reshape(len(X), -1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{path} is empty (shape {arr.shape}). Save at least one row and one column.")
    names = [f"x{j}" for j in range(arr.shape[1])]
    label_idx = _resolve_label(label_column, names, False, path)
    labels = None if label_idx is None else _labels(arr[:, label_idx].tolist())
    X, keep = _split(arr.astype(np.float64, copy=False), label_idx)
    if not keep:
        raise ValueError(
            f"{path}: no feature columns are left besides the label column. The table needs at least "
            "one column of features: name another label column, or add feature columns."
        )
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
        raise ValueError(
            f"{path} is not a readable Parquet file ({exc}). Write it again, e.g. with "
            "pyarrow.parquet.write_table or pandas' DataFrame.to_parquet."
        ) from exc
    names = list(table.column_names)
    if not names or table.num_rows == 0:
        raise ValueError(
            f"{path} is empty ({table.num_rows} rows, {len(names)} columns). Write at least one row and "
            "one column."
        )
    label_idx = _resolve_label(label_column, names, True, path)
    labels = None
    if label_idx is not None:
        col = table.column(label_idx)
        if col.null_count:
            raise ValueError(
                f"{path}: label column {names[label_idx]!r} has {col.null_count} missing values; fill them "
                "in or drop those rows."
            )
        labels = _labels(col.to_pylist())
    keep = [j for j in range(len(names)) if j != label_idx]
    if not keep:
        raise ValueError(
            f"{path}: no feature columns are left besides the label column. The table needs at least "
            "one column of features: name another label column, or add feature columns."
        )
    columns = []
    for j in keep:
        col = table.column(j)
        if not (
            pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
        ):
            raise ValueError(
                f"{path}: column {names[j]!r} (index {j}) has type {col.type}; features must be numbers. "
                "Convert that column to numbers or drop it (a column of labels can be named as the "
                "label column)."
            )
        if col.null_count:
            first_null = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(
                f"{path}: column {names[j]!r} (index {j}) has a missing value in {_row(first_null)} "
                f"({col.null_count} in all); features must be numbers. Drop or fill in those rows first."
            )
        columns.append(col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))
    X = np.column_stack(columns)
    names = [names[j] for j in keep]
    _check_finite(X, names, path, _row)
    return X.astype(np.float32), labels, names
