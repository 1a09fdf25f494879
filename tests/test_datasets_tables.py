"""read_table: users' CSV/TSV, .npy and Parquet files, with exact error messages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from flowmix.datasets import read_table


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_and_named_label(tmp_path):
    path = write(tmp_path, "d.csv", "a,b,label\n1,2,0\n3.5,-4e1,1\n\n5,6,1\n")
    X, y, names = read_table(path, label_column="label")
    assert X.dtype == np.float32 and X.shape == (3, 2)
    np.testing.assert_array_equal(X, [[1, 2], [3.5, -40], [5, 6]])
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1]
    assert names == ["a", "b"]


def test_csv_without_header_label_by_index(tmp_path):
    path = write(tmp_path, "d.csv", "1,0,2\n3,1,4\n")
    X, y, names = read_table(path, label_column=1)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y.tolist() == [0, 1] and names == ["x0", "x2"]
    X, y, names = read_table(path, label_column=-1)
    assert y.tolist() == [2, 4] and names == ["x0", "x1"]
    X, y, names = read_table(path)
    assert X.shape == (2, 3) and y is None and names == ["x0", "x1", "x2"]


def test_string_labels_are_not_a_header(tmp_path):
    path = write(tmp_path, "iris.csv", "5.1,3.5,setosa\n6.2,2.9,versicolor\n")
    X, y, names = read_table(path, label_column=2)
    assert X.shape == (2, 2) and y.tolist() == ["setosa", "versicolor"] and names == ["x0", "x1"]
    path = write(tmp_path, "iris2.csv", "sl,sw,species\n5.1,3.5,setosa\n6.2,2.9,versicolor\n")
    X, y, names = read_table(path, label_column="species")
    assert X.shape == (2, 2) and names == ["sl", "sw"]


def test_other_delimiters_bom_and_crlf(tmp_path):
    X, _, names = read_table(write(tmp_path, "d.tsv", "p\tq\n1\t2\n3\t4\n"))
    assert names == ["p", "q"] and X.tolist() == [[1, 2], [3, 4]]
    X, _, _ = read_table(write(tmp_path, "d.txt", "1;2\n3;4\n"))
    assert X.tolist() == [[1, 2], [3, 4]]
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,y\r\n1,2\r\n3,4\r\n".encode())
    X, _, names = read_table(path)
    assert names == ["x", "y"] and X.shape == (2, 2)
    X, _, _ = read_table(write(tmp_path, "one.csv", "1.5\n2.5\n"))
    assert X.shape == (2, 1)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b\n1,2\n3,x\n", {}, "d.csv: line 3, column 'b' (index 1) holds 'x', not a number."),
        ("a,b\n1,2\n3,\n", {}, "d.csv: line 3, column 'b' (index 1) is empty."),
        (
            "1,2\n3,4,5\n",
            {},
            "d.csv: line 2 has 3 fields but line 1 has 2; every row needs the same number of columns.",
        ),
        ("", {}, "d.csv is empty."),
        ("  \n\n", {}, "d.csv is empty."),
        ("a,b\n", {}, "d.csv has a header but no data rows."),
        ("a,b\n1,nan\n", {}, "d.csv: line 2, column 'b' holds nan; features must be finite numbers."),
        ("a,b\n1,2\n", {"label_column": "c"}, "d.csv: no column named 'c'; the columns are ['a', 'b']."),
        ("1,2\n", {"label_column": "c"}, "label column 'c' given by name, but the file has no header"),
        ("1,2\n", {"label_column": 2}, "label column index 2 is out of range for 2 columns."),
        ("1\n2\n", {"label_column": 0}, "no feature columns are left besides the label column."),
    ],
    ids=[
        "non-numeric",
        "empty-cell",
        "ragged",
        "empty",
        "blank",
        "header-only",
        "nan",
        "no-name",
        "no-header",
        "index-range",
        "only-label",
    ],
)
def test_csv_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path, "d.csv", text)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        read_table(path, **kwargs)
    assert str(path) in str(err.value)


def test_unknown_extension_and_missing_file(tmp_path):
    path = write(tmp_path, "d.xlsx", "1,2\n")
    with pytest.raises(
        ValueError,
        match=r"d.xlsx: unknown file type '.xlsx'; use one of .csv, .tsv, .txt, .dat, "
        r"\.npy, \.parquet, \.pq\.",
    ):
        read_table(path)
    with pytest.raises(FileNotFoundError, match="No such file"):
        read_table(tmp_path / "nope.csv")


def test_npy(tmp_path):
    arr = np.array([[1.0, 2.0, 0], [3.0, 4.0, 1]])
    np.save(tmp_path / "a.npy", arr)
    X, y, names = read_table(tmp_path / "a.npy", label_column=2)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert X.dtype == np.float32 and y.dtype == np.int64 and y.tolist() == [0, 1] and names == ["x0", "x1"]
    np.save(tmp_path / "v.npy", np.arange(3))
    assert read_table(tmp_path / "v.npy")[0].shape == (3, 1)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="o.npy is not a plain numeric .npy array"):
        read_table(tmp_path / "o.npy")
    np.save(tmp_path / "c.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"array of shape \(2, 2, 2\); expected a 2-D table"):
        read_table(tmp_path / "c.npy")
    np.save(tmp_path / "i.npy", np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match=r"i.npy: row 0 \(0-based\), column 'x1' holds inf"):
        read_table(tmp_path / "i.npy")
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="array of dtype <U1; expected numbers"):
        read_table(tmp_path / "s.npy")


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"u": [1.0, 2.0, 3.0], "v": [4, 5, 6], "cls": ["a", "b", "a"]})
    pq.write_table(table, tmp_path / "t.parquet")
    X, y, names = read_table(tmp_path / "t.parquet", label_column="cls")
    np.testing.assert_array_equal(X, [[1, 4], [2, 5], [3, 6]])
    assert names == ["u", "v"] and y.tolist() == ["a", "b", "a"]
    with pytest.raises(
        ValueError, match=r"t.parquet: column 'cls' \(index 2\) has type string; features must be"
    ):
        read_table(tmp_path / "t.parquet")
    pq.write_table(pa.table({"u": [1.0, None]}), tmp_path / "n.parquet")
    with pytest.raises(ValueError, match=r"column 'u' \(index 0\) has a missing value in row 1 \(0-based\)"):
        read_table(tmp_path / "n.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="bad.parquet is not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet")
